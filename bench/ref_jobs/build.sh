#!/usr/bin/env bash
# Builds the reference jobs lms-jobs/assessment-aggregator and
# lms-jobs/credential-generator/collection-certificate-generator (Scala 2.12, Flink 1.13.5) from a
# copy of Sunbird-Lern/data-pipeline, trimmed by trim_jobs.py so that they build from Maven Central and
# run from target/classes plus their runtime classpath on a local Flink mini-cluster.
#
#   bench/ref_jobs/build.sh REF_SRC [WORK]
#
# REF_SRC  a bare git repository of Sunbird-Lern/data-pipeline (files taken with `git archive ${REF_REV:-HEAD}`).
# WORK     where to build (default /tmp/bench-ref-jobs/ref). Removed and rebuilt unless it holds a finished build.
#
# Why `package` in one reactor and not `install` (as ../shared/bench-ref/build_reference.sh does): install
# would overwrite org.sunbird:jobs-core:1.0.0 in ~/.m2, which the activity build's cp.txt points at. Here
# each job's cp.txt points at WORK/jobs-core/target/jobs-core-1.0.0.jar, so the two builds never meet.
# Result: WORK/<job>/target/classes and WORK/<job>/cp.txt for both jobs. Extra Maven flags: MVN_ARGS.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REF_SRC="${1:-/work/.mirror/Sunbird-Lern+data-pipeline/repo}"
WORK="${2:-/tmp/bench-ref-jobs/ref}"
REF_REV="${REF_REV:-HEAD}"
MVN_ARGS="${MVN_ARGS:-}"
JOBS=(lms-jobs/assessment-aggregator lms-jobs/credential-generator/collection-certificate-generator)
PATHS=(pom.xml jobs-core lms-jobs/pom.xml lms-jobs/assessment-aggregator lms-jobs/credential-generator)
STAMP="$WORK/.ref-jobs-built"
MARK="$WORK/.ref-jobs"

log() { echo "[ref_jobs/build $(date -u +%T)] $*"; }
die() { echo "[ref_jobs/build] ERROR: $*" >&2; exit 1; }

built() { for j in "${JOBS[@]}"; do [[ -s "$WORK/$j/cp.txt" && -d "$WORK/$j/target/classes" ]] || return 1; done; }
if [[ -f "$STAMP" ]] && built; then log "already built in $WORK ($(cat "$STAMP")); remove $STAMP to rebuild"; exit 0; fi

git --git-dir "$REF_SRC" rev-parse --verify -q "$REF_REV^{commit}" >/dev/null || die "$REF_SRC: no git repository with $REF_REV"
if [[ -d "$WORK" && -n "$(ls -A "$WORK" 2>/dev/null)" ]]; then
  [[ -f "$MARK" ]] || die "$WORK is not empty and was not made by this script; pass another WORK"
  rm -rf "$WORK"
fi
mkdir -p "$WORK"
echo "made by bench/ref_jobs/build.sh" > "$MARK"
REV="$(git --git-dir "$REF_SRC" rev-parse --short "$REF_REV^{commit}")"
log "extracting $REF_REV ($REV) from $REF_SRC"
# A partial mirror may lack large blobs of other paths (git prints errors for them); tar fails if a taken file is missing.
git --git-dir "$REF_SRC" archive "$REF_REV" -- "${PATHS[@]}" 2>"$WORK/archive.err" | tar -x -C "$WORK"
for p in "${PATHS[@]}"; do [[ -e "$WORK/$p" ]] || die "$p missing after extraction"; done

log "trimming poms and sources"
python3 "$HERE/trim_jobs.py" "$WORK"

log "mvn package + dependency:build-classpath (tests skipped)"
# shellcheck disable=SC2086
(cd "$WORK" && mvn -B $MVN_ARGS -Dmaven.test.skip=true package dependency:build-classpath \
   -Dmdep.outputFile=cp.txt -Dmdep.includeScope=runtime) > "$WORK/build.log" 2>&1 \
  || { tail -40 "$WORK/build.log" >&2; die "maven build failed, full log: $WORK/build.log"; }
built || die "a job's target/classes or cp.txt is missing (see $WORK/build.log)"
echo "git $REF_SRC at $REV, built $(date -u +%FT%TZ)" > "$STAMP"
for j in "${JOBS[@]}"; do log "done: $WORK/$j ($(tr ':' '\n' < "$WORK/$j/cp.txt" | wc -l) jars)"; done
