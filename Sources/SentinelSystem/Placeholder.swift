// adapters
