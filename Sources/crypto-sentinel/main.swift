print("crypto-sentinel")
