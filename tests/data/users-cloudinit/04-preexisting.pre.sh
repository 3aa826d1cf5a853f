# shellcheck shell=sh
# Run in both roots before 04-preexisting.yaml: a group and a user of the image.
set -e
groupadd --gid 1500 developers
useradd --uid 1400 --create-home --comment "Old User" --shell /bin/bash olduser
