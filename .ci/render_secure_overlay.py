"""Prints the StatefulSet of deploy/kubernetes/secure as kustomize would
make it (the base StatefulSet with the overlay's inline JSON patches), so
.ci/run can validate the result against the Kubernetes schemas: the patch
itself is no resource. Needs PyYAML and jsonpatch (from PyPI)."""
import sys

import jsonpatch
import yaml


def main():
    base, overlay = sys.argv[1], sys.argv[2]
    with open(f"{base}/statefulset.yaml") as f:
        sts = yaml.safe_load(f)
    with open(f"{overlay}/kustomization.yaml") as f:
        k = yaml.safe_load(f)
    for p in k["patches"]:
        assert p["target"] == {"kind": "StatefulSet", "name": sts["metadata"]["name"]}, p["target"]
        sts = jsonpatch.apply_patch(sts, yaml.safe_load(p["patch"]))
    yaml.safe_dump(sts, sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main()
