#!/usr/bin/env python3
"""Extracts the slice of the AWS provider's schema that the offline Terraform checks need.

There is no Terraform binary (and so no `terraform providers schema -json`) where the tests run,
but npm's prebuilt CDKTF bindings, `@cdktf/provider-aws`, are generated from that schema and keep
it in their jsii assembly (`package/.jsii`, ~130 MB of JSON): one class per resource and data
source, whose docs link to `.../docs/resources/<type>` or `.../docs/data-sources/<type>`, and
one interface per configuration block, each property documented with a link ending in
`#<argument> <Class>#<argument>` (the Terraform name; the property name itself is camelCase).
Nested blocks are properties documented as "<name> block." whose type is another interface,
possibly in a list; an interface-typed property without that note is a nested *attribute*
(`x = { ... }`), so it is listed as an argument.

Run by hand when the provider pin changes (not part of `make test`; it needs the registry):

    python3 tests/infra/extract_provider_schema.py --package-version 21.22.1

It downloads the tarball with `npm pack` into target/provider-schema/ (or reads `--tarball`),
checks that the provider version it was generated from satisfies infra/versions.tf, and writes
tests/infra/aws-provider-schema.json:

  * the package and provider versions;
  * every resource and data source type name;
  * for each type that infra/**/*.tf declares (plus --extra-types), its arguments and nested
    blocks, recursively.

Commit only the extract, never the tarball or the .jsii. Python 3 standard library only.
"""

import argparse
import gzip
import json
import pathlib
import re
import subprocess
import sys
import tarfile

PACKAGE = "@cdktf/provider-aws"
ASSEMBLY_PREFIX = PACKAGE + "."
REPO = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT = REPO / "tests/infra/aws-provider-schema.json"
DOWNLOAD_DIR = REPO / "target/provider-schema"

# A resource or data source class: "Represents a {@link https://registry.terraform.io/providers/
# hashicorp/aws/6.25.0/docs/resources/lambda_function aws_lambda_function}."
TYPE_LINK = re.compile(
    r"\{@link https://registry\.terraform\.io/providers/hashicorp/aws/[^/\s]+/docs/"
    r"(resources|data-sources)/\w+ (\w+)\}"
)
# A configuration property: "... {@link https://.../lambda_function#memory_size LambdaFunction#memory_size}"
ARGUMENT_LINK = re.compile(r"#(\w+) \w+#(\w+)\}")
# `resource "aws_x" "name"` / `data "aws_x" "name"` at the start of a line.
DECLARATION = re.compile(r'^\s*(resource|data)\s+"([A-Za-z0-9_]+)"', re.MULTILINE)
# Bound of the nesting walk: provider schemas are trees, this only guards against a cycle.
MAX_DEPTH = 12


def fail(message):
    sys.exit(f"extract_provider_schema: {message}")


def download(version):
    DOWNLOAD_DIR.mkdir(parents=True, exist_ok=True)
    tarball = DOWNLOAD_DIR / f"cdktf-provider-aws-{version}.tgz"
    if not tarball.exists():
        subprocess.run(
            ["npm", "pack", f"{PACKAGE}@{version}", "--pack-destination", str(DOWNLOAD_DIR)],
            check=True,
        )
    if not tarball.exists():
        fail(f"npm pack did not produce {tarball}")
    return tarball


def read_member(archive, name):
    try:
        member = archive.extractfile(name)
    except KeyError:
        member = None
    if member is None:
        fail(f"{name} is not in the tarball")
    return member.read()


def load_package(tarball):
    """Returns (package.json, the jsii assembly) from the npm tarball."""
    with tarfile.open(tarball, "r:gz") as archive:
        package = json.loads(read_member(archive, "package/package.json"))
        assembly = json.loads(read_member(archive, "package/.jsii"))
        # Newer jsii writes a redirect to a compressed assembly.
        if assembly.get("schema") == "jsii/file-redirect":
            data = read_member(archive, "package/" + assembly["filename"])
            if assembly.get("compression") == "gzip":
                data = gzip.decompress(data)
            assembly = json.loads(data)
    return package, assembly


def provider_version(package):
    try:
        provider = package["cdktf"]["provider"]
    except KeyError:
        fail("package.json has no cdktf.provider: is this a prebuilt provider package?")
    if provider.get("name") != "registry.terraform.io/hashicorp/aws":
        fail(f"package.json names provider {provider.get('name')!r}, not hashicorp/aws")
    return provider["version"]


def version_tuple(text):
    parts = text.strip().split(".")
    if not all(part.isdigit() for part in parts):
        fail(f"cannot compare version {text!r}")
    return tuple(int(part) for part in parts)


def satisfies(version, constraint):
    """Terraform version constraints, the operators infra/ uses (=, !=, >, >=, <, <=, ~>)."""
    have = version_tuple(version)
    for clause in constraint.split(","):
        match = re.fullmatch(r"\s*(>=|<=|!=|~>|=|>|<)?\s*([0-9.]+)\s*", clause)
        if not match:
            fail(f"cannot read version constraint clause {clause!r}")
        operator, bound = match.group(1) or "=", match.group(2)
        want = version_tuple(bound)
        width = max(len(have), len(want))
        h, w = have + (0,) * (width - len(have)), want + (0,) * (width - len(want))
        if operator == "~>":
            prefix = want[:-1] if len(want) > 1 else want
            ok = h >= w and have[: len(prefix)] == prefix
        else:
            ok = {"=": h == w, "!=": h != w, ">": h > w, ">=": h >= w, "<": h < w, "<=": h <= w}[operator]
        if not ok:
            return False
    return True


def required_aws_versions(infra):
    """The `version` of every `aws = { source = "hashicorp/aws" ... }` in infra/**/versions.tf."""
    constraints = []
    for path in sorted(infra.rglob("*.tf")):
        text = path.read_text()
        for match in re.finditer(r'aws\s*=\s*\{[^}]*source\s*=\s*"hashicorp/aws"[^}]*\}', text):
            version = re.search(r'version\s*=\s*"([^"]+)"', match.group(0))
            if version:
                constraints.append((path.relative_to(REPO), version.group(1)))
    return constraints


def declared_types(infra):
    resources, data_sources = set(), set()
    for path in sorted(infra.rglob("*.tf")):
        if ".terraform" in path.parts:
            continue
        for kind, name in DECLARATION.findall(path.read_text()):
            (resources if kind == "resource" else data_sources).add(name)
    return resources, data_sources


def docs_text(docs):
    return f"{docs.get('summary', '')} {docs.get('remarks', '')}"


def provider_interfaces(type_ref):
    """The provider interfaces a property's type refers to (through unions and collections)."""
    if "fqn" in type_ref:
        return [type_ref["fqn"]] if type_ref["fqn"].startswith(ASSEMBLY_PREFIX) else []
    if "collection" in type_ref:
        return provider_interfaces(type_ref["collection"]["elementtype"])
    if "union" in type_ref:
        return [fqn for member in type_ref["union"]["types"] for fqn in provider_interfaces(member)]
    return []


def block_schema(types, fqn, depth=0):
    """{"arguments": [...], "blocks": {name: block_schema}} of one configuration interface."""
    if depth > MAX_DEPTH:
        fail(f"{fqn} nests deeper than {MAX_DEPTH} levels: a cycle?")
    interface = types.get(fqn)
    if interface is None or interface.get("kind") != "interface":
        fail(f"{fqn} is not an interface in the assembly")
    arguments, blocks = set(), {}
    for prop in interface.get("properties", []):
        link = ARGUMENT_LINK.search(docs_text(prop["docs"]))
        if not link or link.group(1) != link.group(2):
            fail(f"{fqn}.{prop['name']}: no Terraform argument name in its docs")
        name = link.group(1)
        nested = provider_interfaces(prop["type"])
        if nested and prop["docs"].get("summary", "").strip() == f"{name} block.":
            if len(nested) != 1:
                fail(f"{fqn}.{prop['name']}: block of several types {nested}")
            blocks[name] = block_schema(types, nested[0], depth + 1)
        else:
            arguments.add(name)
    return {"arguments": sorted(arguments), "blocks": dict(sorted(blocks.items()))}


def type_classes(types):
    """{"resources": {type: config fqn}, "data-sources": {...}} from the assembly's classes."""
    found = {"resources": {}, "data-sources": {}}
    for fqn, cls in types.items():
        if cls.get("kind") != "class":
            continue
        link = TYPE_LINK.search(cls.get("docs", {}).get("summary", ""))
        if not link:
            continue
        kind, type_name = link.groups()
        params = (cls.get("initializer") or {}).get("parameters", [])
        config = [p["type"].get("fqn") for p in params if p["name"] == "config"]
        if len(config) != 1 or not config[0]:
            fail(f"{fqn} ({type_name}) has no config parameter")
        if type_name in found[kind]:
            fail(f"{type_name} is defined twice ({found[kind][type_name]}, {config[0]})")
        found[kind][type_name] = config[0]
    return found


def dump(value, indent=0, one_per_line=False):
    """Stable, reviewable and small JSON: objects indented, the top-level lists of type names one
    name per line (a provider update is a readable diff), argument lists on one line."""
    pad, inner = " " * indent, " " * (indent + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{inner}{json.dumps(key)}: {dump(item, indent + 1, key.endswith('_types'))}"
                 for key, item in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list) and one_per_line:
        return "[\n" + ",\n".join(inner + json.dumps(item) for item in value) + "\n" + pad + "]"
    return json.dumps(value)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--package-version", required=True, help=f"version of {PACKAGE}, e.g. 21.22.1")
    parser.add_argument("--tarball", type=pathlib.Path, help="an already downloaded npm tarball")
    parser.add_argument("--output", type=pathlib.Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--extra-types", nargs="*", default=[], help="more resource types to include")
    args = parser.parse_args()

    tarball = args.tarball or download(args.package_version)
    package, assembly = load_package(tarball)
    if package.get("version") != args.package_version:
        fail(f"{tarball} is {PACKAGE} {package.get('version')}, not {args.package_version}")
    version = provider_version(package)
    for path, constraint in required_aws_versions(REPO / "infra"):
        if not satisfies(version, constraint):
            fail(f"provider {version} does not satisfy {path}'s \"{constraint}\": pick another package version")

    classes = type_classes(assembly["types"])
    resources, data_sources = declared_types(REPO / "infra")
    resources |= set(args.extra_types)
    schemas = {}
    for kind, wanted in (("resources", resources), ("data-sources", data_sources)):
        unknown = sorted(wanted - classes[kind].keys())
        if unknown:
            fail(f"infra/ declares {kind} the provider does not have: {unknown}")
        schemas[kind] = {name: block_schema(assembly["types"], classes[kind][name]) for name in sorted(wanted)}

    extract = {
        "generated_by": "tests/infra/extract_provider_schema.py --package-version " + args.package_version,
        "package": PACKAGE,
        "package_version": args.package_version,
        "provider": "registry.terraform.io/hashicorp/aws",
        "provider_version": version,
        "resource_types": sorted(classes["resources"]),
        "data_source_types": sorted(classes["data-sources"]),
        "resources": schemas["resources"],
        "data_sources": schemas["data-sources"],
    }
    args.output.write_text(dump(extract) + "\n")
    print(
        f"{args.output.relative_to(REPO) if args.output.is_relative_to(REPO) else args.output}: "
        f"provider {version}, {len(extract['resource_types'])} resource and "
        f"{len(extract['data_source_types'])} data source types, schemas of "
        f"{len(resources)} resources and {len(data_sources)} data sources, "
        f"{args.output.stat().st_size} bytes"
    )


if __name__ == "__main__":
    main()
