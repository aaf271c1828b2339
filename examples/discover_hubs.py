"""Discover hubs: public ones without signing in, the workspace's own after signing in.

    python examples/discover_hubs.py [--ref joke-garden]

With THALOVANT_EMAIL and THALOVANT_PASSWORD set it also signs in and lists the hubs the
workspace can see.
"""

from __future__ import annotations

import argparse
import os
import sys

from thalovant import ThalovantControlPlane


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ref", default=os.environ.get("THALOVANT_HUB", "joke-garden"))
    args = parser.parse_args()

    api = ThalovantControlPlane()

    page = api.list_public_hubs(limit=12)
    for hub in page["data"]:
        print(hub["id"], hub["slug"], hub["title"])

    hub = api.get_public_hub(args.ref)
    print(hub["title"], hub["public_ref"])

    email = os.environ.get("THALOVANT_EMAIL")
    password = os.environ.get("THALOVANT_PASSWORD")
    if email and password:
        api.login(email, password)
        page = api.list_hubs(limit=25)
        for hub in page["data"]:
            print(hub["id"], hub["title"])
        if page["data"]:
            hub = api.get_hub(page["data"][0]["id"])
            print(hub["title"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
