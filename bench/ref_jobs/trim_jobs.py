"""Trims an extracted copy of the reference (Sunbird-Lern/data-pipeline) so that only jobs-core,
``lms-jobs/assessment-aggregator`` and ``lms-jobs/credential-generator/{certificate-processor,
collection-certificate-generator}`` build from Maven Central, and both jobs run from
``target/classes`` plus their Maven runtime classpath on a local Flink 1.13.5 mini-cluster.

    python3 trim_jobs.py WORK

Why: the same reasons and the same trims as ``../shared/bench-ref/trim_poms.py`` (whose pom helpers
this imports), widened to what these two jobs need. The certificate generator opens an
Elasticsearch client and builds a cloud-storage service in ``open()``/``main`` even on the RC path,
so jobs-core keeps ``elasticsearch-rest-high-level-client`` and ``ElasticSearchUtil.scala``, and
certificate-processor keeps its own dependencies (cloud-store-sdk is on Maven Central). Only test
dependencies, test sources and the shade/scalatest/scoverage/test-jar plugins go.

One pin: with the trimmed jobs-core, Maven mediates the generator's Netty to a mix of 4.1.94
(netty-common and epoll, from certificate-processor's zookeeper/hadoop) and 4.0.56 (the Cassandra
driver's handler/transport), and the Cassandra driver fails in ``open()`` (AbstractMethodError in
NioEventLoopGroup). The untrimmed build pulls Netty 4.1 for all of them, so the generator's pom pins
the Netty 4.1.94 family (``dependencyManagement``). Each edited pom is kept as ``pom.xml.orig``;
safe to run twice. Standard library only (plus the shared helpers).
"""

from __future__ import annotations

import os
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

SHARED = Path(os.environ.get("BENCH_REF_DIR", Path(__file__).resolve().parents[3] / "shared" / "bench-ref"))
sys.path.insert(0, str(SHARED))
from trim_poms import CORE_KEEP, JOB_ADD, drop_plugins, load, q, save, text  # noqa: E402

ASSESS = "lms-jobs/assessment-aggregator"
CREDS = "lms-jobs/credential-generator"
PROC = f"{CREDS}/certificate-processor"
CERTGEN = f"{CREDS}/collection-certificate-generator"
JOBS = (ASSESS, CERTGEN)
CORE_EXTRA = {"elasticsearch-rest-high-level-client"}
DROP_PLUGINS = {"maven-shade-plugin", "scalatest-maven-plugin", "scoverage-maven-plugin", "maven-jar-plugin"}
UNUSED_SOURCES = ("MongoUtil.scala", "Neo4JUtil.scala")
NETTY = ("netty-common", "netty-buffer", "netty-transport", "netty-handler", "netty-codec", "netty-resolver")
NETTY_VERSION = "4.1.94.Final"


def set_modules(pom: Path, names: list[str]) -> None:
    tree = load(pom)
    root = tree.getroot()
    modules = root.find(q("modules"))
    for m in list(modules):
        modules.remove(m)
    for name in names:
        ET.SubElement(modules, q("module")).text = name
    for tag in ("repositories", "pluginRepositories"):
        el = root.find(q(tag))
        if el is not None:
            root.remove(el)
    save(tree, pom)
    print(f"[trim] {pom}: modules = {', '.join(names)}")


def trim_deps(pom: Path, keep: set[str] | None = None, unprovide: bool = False, add: list | None = None) -> None:
    """Drops test dependencies (and, with ``keep``, every dependency not named in it); with
    ``unprovide`` makes ``provided`` ones compile scope (no Flink distribution supplies them)."""
    tree = load(pom)
    root = tree.getroot()
    deps = root.find(q("dependencies"))
    dropped = []
    for d in list(deps.findall(q("dependency"))):
        scope = d.find(q("scope"))
        s = (scope.text or "").strip() if scope is not None else ""
        if s == "test" or (keep is not None and text(d, "artifactId") not in keep):
            deps.remove(d)
            dropped.append(text(d, "artifactId"))
        elif unprovide and s == "provided":
            d.remove(scope)
    have = {text(d, "artifactId") for d in deps.findall(q("dependency"))}
    for g, a, v in add or []:
        if a not in have:
            d = ET.SubElement(deps, q("dependency"))
            for tag, val in (("groupId", g), ("artifactId", a), ("version", v)):
                ET.SubElement(d, q(tag)).text = val
    plugins = drop_plugins(root, DROP_PLUGINS)
    save(tree, pom)
    print(f"[trim] {pom}: dropped {len(dropped)} dependencies; plugins dropped: {', '.join(plugins) or '-'}")


def pin_netty(pom: Path) -> None:
    """One Netty version for the whole classpath (see the module docstring)."""
    tree = ET.parse(pom, ET.XMLParser(target=ET.TreeBuilder(insert_comments=True)))
    root = tree.getroot()
    dm = root.find(q("dependencyManagement"))
    dm = ET.SubElement(root, q("dependencyManagement")) if dm is None else dm
    deps = dm.find(q("dependencies"))
    deps = ET.SubElement(dm, q("dependencies")) if deps is None else deps
    for a in NETTY:
        d = ET.SubElement(deps, q("dependency"))
        for tag, val in (("groupId", "io.netty"), ("artifactId", a), ("version", NETTY_VERSION)):
            ET.SubElement(d, q(tag)).text = val
    save(tree, pom)
    print(f"[trim] {pom}: Netty pinned to {NETTY_VERSION}")


def main() -> int:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    work = Path(sys.argv[1]).resolve()
    set_modules(work / "pom.xml", ["jobs-core", ASSESS, CREDS])
    set_modules(work / CREDS / "pom.xml", ["certificate-processor", "collection-certificate-generator"])
    trim_deps(work / "jobs-core" / "pom.xml", keep=CORE_KEEP | CORE_EXTRA)
    trim_deps(work / PROC / "pom.xml")
    for job in JOBS:
        trim_deps(work / job / "pom.xml", unprovide=True, add=JOB_ADD)
    pin_netty(work / CERTGEN / "pom.xml")
    for name in UNUSED_SOURCES:
        for f in (work / "jobs-core" / "src" / "main").rglob(name):
            f.unlink()
            print(f"[trim] deleted {f.relative_to(work)}")
    for d in (work / "jobs-core", work / ASSESS, work / PROC, work / CERTGEN):
        if (d / "src" / "test").exists():
            shutil.rmtree(d / "src" / "test")
            print(f"[trim] deleted {(d / 'src' / 'test').relative_to(work)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
