"""The command line starts fast: `--help` of every command and shell completion import neither torch
nor torchvision (nor numpy); each command imports what it needs when it runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

HEAVY = ("torch", "torchvision", "numpy", "PIL", "omegaconf")

# In a fresh interpreter: run `trainer ARGS --help` for every command of the app, then report which of
# the heavy modules were imported.
PROBE = textwrap.dedent("""
    import json, sys
    import typer
    from trainer.cli import app

    def every_command(group, prefix):
        for name, command in sorted(group.commands.items()):
            yield prefix + [name]
            if hasattr(command, "commands"):  # a group (typer vendors its own click)
                yield from every_command(command, prefix + [name])

    commands = [[]] + list(every_command(typer.main.get_command(app), []))
    for words in commands:
        try:
            app(words + ["--help"], prog_name="trainer")
        except SystemExit as stop:
            assert stop.code == 0, (words, stop.code)
    print(json.dumps({"commands": [" ".join(w) for w in commands],
                      "heavy": [name for name in %r if name in sys.modules]}))
""") % (HEAVY,)


def test_help_of_every_command_imports_no_heavy_module():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"", "train", "eval", "check", "data", "data shapes"} <= set(report["commands"])
    assert report["heavy"] == []


def test_trainer_help_and_train_help_leave_torch_out():
    """The entry point as a user runs it (`python -m trainer`), one process per command line."""
    for words in (["--help"], ["train", "--help"]):
        probe = ("import runpy, sys; sys.argv = ['trainer', *%r]\n"
                 "try:\n    runpy.run_module('trainer', run_name='__main__')\n"
                 "except SystemExit:\n    pass\n"
                 "print('torch' in sys.modules, 'torchvision' in sys.modules)") % (words,)
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
        assert "Usage" in done.stdout
        assert done.stdout.strip().splitlines()[-1] == "False False", words


def test_shell_completion_imports_no_heavy_module():
    environment = {**os.environ, "_TRAINER_COMPLETE": "complete_bash", "COMP_WORDS": "trainer tr", "COMP_CWORD": "1"}
    probe = ("import sys\nfrom trainer.cli import app\n"
             "try:\n    app(prog_name='trainer')\nexcept SystemExit:\n    pass\n"
             "print('|', [name for name in %r if name in sys.modules])") % (HEAVY,)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=environment, check=True)
    assert "train" in done.stdout.split("|")[0]
    assert done.stdout.split("|")[1].strip() == "[]"
