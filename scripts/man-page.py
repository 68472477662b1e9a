#!/usr/bin/env python3
"""crypto-sentinel.1 from the parser itself: reads `crypto-sentinel --experimental-dump-help` (swift-argument-parser's
JSON description of every command) on stdin and writes a roff man page on stdout. swift-argument-parser's own
generate-manual plugin needs a package build of its tool (network on a fresh checkout); this needs only python3.

usage: crypto-sentinel --experimental-dump-help | scripts/man-page.py VERSION > crypto-sentinel.1
"""
import json
import sys


def roff(text):
    """Plain text as roff body lines: backslashes escaped, a leading . or ' made literal, blank lines as .PP."""
    out = []
    for line in (text or "").replace("\\", "\\e").split("\n"):
        if not line.strip():
            out.append(".PP")
        elif line.startswith((".", "'")):
            out.append("\\&" + line)
        elif line.startswith(" "):
            # Indented lines are examples: kept as they are, not filled.
            out.append(".nf\n" + line.replace("-", "\\-") + "\n.fi")
        else:
            out.append(line)
    return "\n".join(out)


def flag_names(arg):
    names = []
    for n in arg.get("names") or []:
        prefix = "-" if n.get("kind") == "short" else "--"
        names.append("\\fB" + (prefix + n["name"]).replace("-", "\\-") + "\\fR")
    return ", ".join(names)


def options(command):
    lines = []
    for arg in command.get("arguments") or []:
        if not arg.get("shouldDisplay", True):
            continue
        kind = arg.get("kind")
        value = arg.get("valueName", "")
        if kind == "positional":
            head = "\\fI" + value + "\\fR"
        elif kind == "option":
            head = flag_names(arg) + " \\fI" + value + "\\fR"
        else:
            head = flag_names(arg)
        text = arg.get("abstract", "")
        if arg.get("defaultValue") and kind != "flag":
            text += " (default: " + arg["defaultValue"] + ")"
        if arg.get("discussion"):
            text += "\n" + arg["discussion"]
        lines.append(".TP\n" + head + "\n" + roff(text))
    return "\n".join(lines)


def main():
    version = sys.argv[1] if len(sys.argv) > 1 else ""
    root = json.load(sys.stdin)["command"]
    name = root["commandName"]
    page = [
        '.TH "%s" "1" "" "%s %s" "User Commands"' % (name.upper(), name, version),
        ".SH NAME",
        "%s \\- %s" % (name, root.get("abstract", "")),
        ".SH SYNOPSIS",
    ]
    # `help` is ArgumentParser's own: this page is its long form.
    subs = [s for s in root.get("subcommands") or [] if s.get("shouldDisplay", True) and s["commandName"] != "help"]
    for s in subs:
        page.append(".B %s %s\n[\\fIoptions\\fR]\n.br" % (name, s["commandName"]))
    page += [".SH DESCRIPTION", roff(root.get("discussion", "")),
             ".SH OPTIONS", options(root), ".SH COMMANDS"]
    for s in subs:
        page += [".SS %s %s" % (name, s["commandName"]), roff(s.get("abstract", "")), ".PP",
                 roff(s.get("discussion", "")), options(s)]
    page += [".SH SEE ALSO", "\\fBsystemctl\\fR(1), \\fBjournalctl\\fR(1); the documentation in share/doc/crypto-sentinel."]
    sys.stdout.write("\n".join(p for p in page if p) + "\n")


main()
