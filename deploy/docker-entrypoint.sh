#!/bin/sh
# Entrypoint of the tern image. ternd reads its settings itself: TERN_*
# environment variables, the INI file named by TERN_CONFIG_FILE, and flags
# (README.md, "Configuration"). So this only picks what to run, and prints
# nothing:
#   no arguments, or a first argument starting with '-'  ternd with them
#   anything else                                        that command
#                                    (docker run --rm tern tern --help)
# exec keeps ternd as PID 1, so SIGTERM from "docker stop" or the kubelet
# reaches it directly and its own handler drains the connections.
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
  set -- ternd "$@"
fi
exec "$@"
