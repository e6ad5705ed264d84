"""Shared helper for tests that drive the `jaxsci` CLI in-process."""

from jaxsci.cli import main


def run_cli(capsys, *argv):
    """Run `jaxsci *argv` in-process; return (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err
