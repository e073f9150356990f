#!/usr/bin/env bash
# orthanc-compare.sh: store the same distinct 0.5 MB CT instances into
# radflow serve and into Orthanc (Debian package, SQLite index) on this
# machine, and print instances/s for
#   C-STORE over 1 association (storescu),
#   C-STORE over 4 parallel associations (4 storescu processes),
#   STOW-RS, 10 instances per request, over 4 connections.
# Every run starts a fresh server on a fresh temporary data directory;
# the figure is the median of REPS runs (wall time from the first
# connection to the last response, server start excluded).
#
# Needs: go, storescu (dcmtk), Orthanc and its DICOMweb plugin
# (apt-get install -y orthanc orthanc-dicomweb; the package's system
# service is not used). Environment:
#   N      instances per run (default 1200: about 0.2 s of every run is
#          the sender starting, scanning its file list and setting up its
#          association, whatever the server; at N=300 that was a quarter of
#          radflow's time over four associations and pulled the ratio
#          towards 1, see docs/operations.md, Performance)
#   REPS   runs per figure (default 3), interleaved across servers
#   SRC    source Part 10 file (default ../shared/dicom/cornerstoneWADOImageLoader/CTImage.dcm)
#   ORTHANC_SYNC  "true false" (default): Orthanc's SyncStorageArea values to measure
#   ONLY   "radflow" or "orthanc" to measure one side
#   WORKLOADS  subset of "cstore1 cstore4 stow4" (default all three)
#   RADFLOW_BIN  a radflow binary to measure (default: built from this tree)
#   KEEP   1 keeps the temporary directory
# Durability differs (see docs/operations.md, Performance): radflow
# acknowledges after the WAL fdatasync that follows the commit of the
# instance's row and staged audit record (its flush covers the blob,
# written with O_DIRECT before the commit; on file systems where it
# cannot, the blob is fdatasynced first); Orthanc fdatasyncs each stored file when
# SyncStorageArea is true but commits its SQLite index with
# synchronous=NORMAL in WAL mode (no fsync per commit).
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-1200}
REPS=${REPS:-3}
SRC=${SRC:-../shared/dicom/cornerstoneWADOImageLoader/CTImage.dcm}
ORTHANC_SYNC=${ORTHANC_SYNC:-"true false"}
ONLY=${ONLY:-}
ORTHANC=${ORTHANC:-Orthanc}
DICOMWEB_PLUGIN=${DICOMWEB_PLUGIN:-/usr/share/orthanc/plugins/libOrthancDicomWeb.so}
export TCP_NODELAY=1

[ -f "$SRC" ] || { echo "source file $SRC absent (lay out /work/shared beside the repository)" >&2; exit 2; }
command -v storescu >/dev/null || { echo "storescu (dcmtk) not found" >&2; exit 2; }

TMP=$(mktemp -d /var/tmp/orthanc-compare.XXXXXX)
SERVER_PID=
cleanup() {
	if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
	[ "${KEEP:-0}" = 1 ] || rm -rf "$TMP"
}
trap cleanup EXIT

if [ -n "${RADFLOW_BIN:-}" ]; then cp "$RADFLOW_BIN" "$TMP/radflow"; else go build -o "$TMP/radflow" ./cmd/radflow; fi
go build -o "$TMP/loadgen" ./tools/bench/loadgen
"$TMP/loadgen" copies -src "$SRC" -out "$TMP/files" -n "$N"
# Write the fresh copies back before measuring: on ext4 (data=ordered) an
# fsync's journal commit also waits for other files' dirty data, so the
# ~N x 0.5 MB just written slowed whichever server ran first (radflow:
# C-STORE x1 167/s with them dirty, 232-244/s after sync).
sync
# Four disjoint lists for the four associations.
for a in 0 1 2 3; do
	ls "$TMP"/files/*.dcm | awk -v a=$a 'NR % 4 == a' > "$TMP/list$a"
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_http() { # url
	for _ in $(seq 1 200); do curl -sf -o /dev/null "$1" && return 0; sleep 0.05; done
	echo "server did not answer $1" >&2; return 1
}

stop_server() {
	kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
}

# start_radflow DIR: sets DPORT HPORT AET STOWURL COUNT_CMD
start_radflow() {
	local d=$1; mkdir -p "$d"
	DPORT=$(free_port); HPORT=$(free_port); AET=RADFLOW
	"$TMP/radflow" serve --data "$d" --dicom "127.0.0.1:$DPORT" --http "127.0.0.1:$HPORT" \
		--workers 0 --max-queue-depth 0 --min-free-disk 0 --log-level warn --orphan-age 0 >"$d/log" 2>&1 &
	SERVER_PID=$!
	wait_http "http://127.0.0.1:$HPORT/healthz"
	STOWURL="http://127.0.0.1:$HPORT/dicomweb"
	# STOW-RS needs a role that may store (the service is secure by default).
	RADFLOW_TOKEN=$("$TMP/radflow" tokens create --data "$d" --role technologist --name bench 2>/dev/null | grep -o 'rf_[A-Za-z0-9_-]*')
	export RADFLOW_TOKEN
	# Instance rows (blobs are regions of pack files, not files of their own).
	COUNT_CMD="python3 -c \"import sqlite3; print(sqlite3.connect('$d/radflow.db').execute('select count(*) from instances').fetchone()[0])\""
}

# start_orthanc DIR SYNC
start_orthanc() {
	local d=$1 sync=$2; mkdir -p "$d"
	DPORT=$(free_port); HPORT=$(free_port); AET=ORTHANC
	cat > "$d/config.json" <<JSON
{
  "Name": "bench", "StorageDirectory": "$d/storage", "IndexDirectory": "$d/index",
  "HttpPort": $HPORT, "DicomPort": $DPORT, "DicomAet": "ORTHANC",
  "RemoteAccessAllowed": false, "AuthenticationEnabled": false,
  "DicomCheckCalledAet": false, "StorageCompression": false, "SyncStorageArea": $sync,
  "Plugins": ["$DICOMWEB_PLUGIN"],
  "DicomWeb": {"Enable": true, "Root": "/dicom-web/"}
}
JSON
	"$ORTHANC" "$d/config.json" >"$d/log" 2>&1 &
	SERVER_PID=$!
	wait_http "http://127.0.0.1:$HPORT/system"
	STOWURL="http://127.0.0.1:$HPORT/dicom-web"
	COUNT_CMD="curl -sf http://127.0.0.1:$HPORT/statistics | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"CountInstances\"])'"
}

now() { date +%s.%N; }

# run_one SERVER(radflow|orthanc-sync|orthanc-nosync) WORKLOAD(cstore1|cstore4|stow4): prints instances/s
run_one() {
	local server=$1 wl=$2 d="$TMP/run-$1-$2-$RANDOM"
	case $server in
	radflow) start_radflow "$d" ;;
	orthanc-true) unset RADFLOW_TOKEN; start_orthanc "$d" true ;;
	orthanc-false) unset RADFLOW_TOKEN; start_orthanc "$d" false ;;
	esac
	local t0 t1 pids=()
	t0=$(now)
	case $wl in
	cstore1) storescu -q -aec "$AET" 127.0.0.1 "$DPORT" "$TMP"/files/*.dcm ;;
	cstore4)
		for a in 0 1 2 3; do
			xargs -a "$TMP/list$a" storescu -q -aec "$AET" 127.0.0.1 "$DPORT" & pids+=($!)
		done
		for p in "${pids[@]}"; do wait "$p"; done ;;
	stow4) "$TMP/loadgen" stow -url "$STOWURL" -dir "$TMP/files" -per 10 -conns 4 >/dev/null ;;
	esac
	t1=$(now)
	local got; got=$(eval "$COUNT_CMD")
	stop_server
	# The run's files stay until the script exits (the trap removes $TMP):
	# on ext4 without a journal the inode allocator skips every inode
	# freed in the last 60 s (fs/ext4/ialloc.c, recently_deleted), so
	# deleting a run's 300+ files just before the next run made that run's
	# file creations scan past them (up to 0.4 ms of kernel CPU per file,
	# most of the variance between runs). Keeping them costs disk space:
	# about N x 0.5 MB per run.
	sync
	if [ "$got" != "$N" ]; then echo "$server $wl: stored $got of $N" >&2; exit 1; fi
	python3 -c "print('%.1f' % ($N / ($t1 - $t0)))"
}

median() { tr ' ' '\n' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

servers=()
[ "$ONLY" = orthanc ] || servers+=(radflow)
if [ "$ONLY" != radflow ]; then
	command -v "$ORTHANC" >/dev/null || { echo "Orthanc not found (apt-get install -y orthanc orthanc-dicomweb)" >&2; exit 2; }
	for s in $ORTHANC_SYNC; do servers+=("orthanc-$s"); done
fi

printf '%s distinct instances of %s (%s bytes), median of %s runs, %s CPUs\n' "$N" "$(basename "$SRC")" "$(stat -c %s "$SRC")" "$REPS" "$(nproc)"
# Runs are interleaved: for each workload and repetition every server runs
# once, the first server rotating, so that the slow drifts of a shared VM
# (±20 % over minutes) fall on all servers alike instead of on whichever
# ran its repetitions first.
declare -A vals
WORKLOADS=${WORKLOADS:-cstore1 cstore4 stow4}
for wl in $WORKLOADS; do
	for rep in $(seq 1 "$REPS"); do
		n=${#servers[@]}
		for k in $(seq 0 $((n - 1))); do
			s=${servers[$(((k + rep) % n))]}
			v=$(run_one "$s" "$wl")
			vals[$s.$wl]="${vals[$s.$wl]:-} $v"
			echo "  $s $wl run $rep: $v" >&2
		done
	done
done
printf '%-32s %14s %14s %14s\n' server "C-STORE x1" "C-STORE x4" "STOW 10/req x4"
declare -A med
for s in "${servers[@]}"; do
	row=()
	for wl in cstore1 cstore4 stow4; do
		[ -n "${vals[$s.$wl]:-}" ] || { row+=(-); continue; }
		med[$s.$wl]=$(echo ${vals[$s.$wl]} | median)
		row+=("${med[$s.$wl]}")
	done
	case $s in
	radflow) label="radflow (durable: blob+WAL+audit)" ;;
	orthanc-true) label="Orthanc SyncStorageArea=true" ;;
	orthanc-false) label="Orthanc SyncStorageArea=false" ;;
	esac
	printf '%-32s %14s %14s %14s\n' "$label" "${row[@]}"
done
if [ "${servers[0]}" = radflow ] && [ ${#servers[@]} -gt 1 ]; then
	for s in "${servers[@]:1}"; do
		row=()
		for wl in cstore1 cstore4 stow4; do
			[ -n "${med[radflow.$wl]:-}" ] || { row+=(-); continue; }
			row+=("$(python3 -c "print('%.2fx' % (${med[radflow.$wl]} / ${med[$s.$wl]}))")")
		done
		printf '%-32s %14s %14s %14s\n' "ratio radflow / ${s#orthanc-}" "${row[@]}"
	done
fi
