#!/bin/bash
# train.sh: the kind of wrapper script people put in front of a trainer, for
# test_launchers.c's bash-wrapper scenario. It runs trainer.py WITHOUT exec,
# so bash stays the command memguard run started (the leader of its process
# group) and waits for python; bash does not catch the checkpoint signal,
# so memguard run must not send it to bash, only to the trainer. Passes its
# arguments to trainer.py and exits with the trainer's status.
here=$(dirname "$0")
echo "train.sh: starting the trainer"
"${PYTHON:-/usr/bin/python3}" "$here/trainer.py" "$@"
status=$?
echo "train.sh: trainer exited with $status"
exit "$status"
