#!/usr/bin/python3
"""Runs cloud-init's own users-and-groups module on the system it runs on (a throwaway root, run
chrooted by tests/integration/test_users_cloudinit.sh): the reference side of the differential
test of issue 14.

    cloudinit_users.py CASE.yaml           what cloud-init makes of CASE.yaml as user-data
    cloudinit_users.py --seed CASE.yaml    what tuap's seed asks cloud-init for: `users:
                                           [default]` when CASE.yaml lists `default`, else
                                           nothing (controller/render/cloudinit.c)

CASE.yaml is users.yaml: a list of users, or a mapping (cloud-config keys: users, groups, user).
It is handed to cloud-init's cc_users_groups.handle itself, with a stand-in `cloud` that carries
the Debian distro object built from the root's /etc/cloud/cloud.cfg `system_info` (so `default`
is the image's default_user, `debian` on Debian 12) and no cloud public keys (no datasource).
handle does what cloud-init does at boot: normalize_users_groups, create_group for top-level
groups, create_user per user. The config is first checked against cloud-init's schema and its
findings printed (cloud-init itself only warns and goes on). Logging (every command cloud-init
runs) goes to stdout. Exit 0 when handle returned, 1 when it raised (printed).
"""
import inspect
import logging
import sys
import traceback

import yaml
from cloudinit import distros, helpers
from cloudinit.config import cc_users_groups, schema

CLOUD_CFG = "/etc/cloud/cloud.cfg"


class Cloud:
    """The part of cloudinit.cloud.Cloud that cc_users_groups uses."""

    def __init__(self, distro):
        self.distro = distro

    def get_public_ssh_keys(self):
        return []


def load_case(path, seed):
    with open(path, encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    if isinstance(cfg, list):
        cfg = {"users": cfg}
    if seed:
        users = cfg.get("users") or []
        return {"users": ["default"]} if "default" in users else {}
    return cfg


def make_distro():
    with open(CLOUD_CFG, encoding="utf-8") as f:
        system_info = (yaml.safe_load(f) or {}).get("system_info", {})
    paths = helpers.Paths(system_info.get("paths", {}))
    name = system_info.get("distro", "debian")
    return distros.fetch(name)(name, system_info, paths)


def check_schema(cfg):
    try:
        schema.validate_cloudconfig_schema(
            cfg, schema.get_schema(), strict=True, log_deprecations=True
        )
        print("schema: valid")
    except schema.SchemaValidationError as e:
        print("schema: %s" % e)


def main(argv):
    seed = argv[1:2] == ["--seed"]
    path = argv[-1]
    logging.basicConfig(
        level=logging.DEBUG,
        stream=sys.stdout,
        format="%(levelname)s %(name)s: %(message)s",
        force=True,  # cloudinit.log installs a handler at import
    )
    cfg = load_case(path, seed)
    if not cfg:
        print("nothing to do")
        return 0
    check_schema(cfg)
    cloud = Cloud(make_distro())
    log = logging.getLogger("cc_users_groups")
    params = inspect.signature(cc_users_groups.handle).parameters
    try:
        if "log" in params:  # cloud-init before 23.2
            cc_users_groups.handle("users_groups", cfg, cloud, log, [])
        else:
            cc_users_groups.handle("users_groups", cfg, cloud, [])
    except Exception:  # cloud-init aborts the module here too
        traceback.print_exc(file=sys.stdout)
        print("cloud-init: cc_users_groups raised")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
