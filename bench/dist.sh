#!/usr/bin/env bash
# dist.sh: unet-train's data-parallel mode on this one machine: images per
# second of 1 process with 2 OpenMP threads against 2 MPI ranks of 1
# thread each (and of 1 process with 1 thread, the unit), per-rank BN and
# --sync-bn, and the share of rank 0's training time spent in MPI
# collectives (unet-train prints it at the end: the gradient sum, BN's
# sums, the per-batch agreement; waiting for the slower rank counts too),
# and of that the gradient sums' share and the per-batch agreement's (the
# loss sums and the guard's stop, one small MPI_Allgather per batch).
# Two ways to wait: the defaults spin (OpenMP's threads at a barrier, MPI's
# ranks in a collective), which is right on dedicated cores; "yield" rows
# give the core away instead (OMP_WAIT_POLICY=PASSIVE, --mca
# mpi_yield_when_idle 1), which is what a machine shared with other work
# wants. The load average before and after is printed: compare rows of one
# run only.
# Rounds are interleaved, medians of the epochs after the first (warm-up).
# Last, bench_dist_sum times the gradient sum and the agreement alone.
# Needs Open MPI (libopenmpi-dev, openmpi-bin) and a build that found it.
# Usage: bench/dist.sh [BUILD_DIR] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
rounds=${2:-3}
ut="$build/unet-train"
[ -x "$ut" ] || scripts/build.sh "$build"
command -v mpirun >/dev/null || { echo "dist.sh: mpirun not found (apt-get install openmpi-bin)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 96 synthetic 64x64 images, depth 3, base 16, global batch 8: 12 steps per
# epoch, no validation; 4 epochs, the first one dropped. (The plan below,
# for bench_dist_sum's vector, names the same model.)
args=(--synthetic 96 --val-split 0 --img-size 64 --depth 3 --base 16 --in-ch 1 --batch 8
      --epochs 4 --progress lines --seed 1)
mpi=(mpirun --allow-run-as-root --oversubscribe --bind-to none --mca btl self,vader
     --mca btl_vader_single_copy_mechanism none)

# median: the median of the numbers on stdin, one a line.
median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR) print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# run NAME CMD...: one run; prints "NAME img_s comm_share grads_share
# step_share" (median img/s of epochs 2..; rank 0's seconds in all
# collectives, in the gradient sums, in the per-batch sums and stop
# agreement, each over its training seconds).
run() {
    local name=$1
    shift
    rm -rf "$work/out"
    local log rate share
    log=$("$@" --out "$work/out" 2>&1) || { echo "$name failed:" >&2; echo "$log" >&2; exit 1; }
    rate=$(awk '/^epoch [0-9]+\/[0-9]+ / { if (++n > 1) for (i = 1; i <= NF; i++)
                                              if ($i == "img/s") print $(i - 1) }' <<<"$log" | median)
    share=$(awk '/^epoch [0-9]+\/[0-9]+ / { total += $(NF - 1) }
                 /s in MPI collectives/ { for (i = 1; i <= NF; i++) {
                     if ($i == "spent") comm = $(i + 1)
                     if ($i == "sums" && $(i - 1) == "(gradient") grads = $(i + 1)
                     if ($i == "agreement") step = $(i + 1) } }
                 END { if (total <= 0) total = 1e300
                       printf "%.4f %.4f %.5f", comm / total, grads / total, step / total }' <<<"$log")
    echo "$name $rate $share"
}

results=$work/results
: >"$results"
uptime
for ((r = 1; r <= rounds; r++)); do
    run "1x1" "$ut" "${args[@]}" --threads 1 >>"$results"
    run "1x2" "$ut" "${args[@]}" --threads 2 >>"$results"
    run "1x2-yield" env OMP_WAIT_POLICY=PASSIVE "$ut" "${args[@]}" --threads 2 >>"$results"
    run "2x1" "${mpi[@]}" -np 2 "$ut" "${args[@]}" --threads 1 >>"$results"
    run "2x1-sync" "${mpi[@]}" -np 2 "$ut" "${args[@]}" --threads 1 --sync-bn >>"$results"
    run "2x1-yield" "${mpi[@]}" --mca mpi_yield_when_idle 1 -np 2 "$ut" "${args[@]}" \
        --threads 1 >>"$results"
    run "2x1-sync-yield" "${mpi[@]}" --mca mpi_yield_when_idle 1 -np 2 "$ut" "${args[@]}" \
        --threads 1 --sync-bn >>"$results"
done

echo "unet-train data parallel, $(nproc) cores, $rounds rounds; ${args[*]}"
uptime
printf '%-40s %10s %9s %9s %11s\n' "processes x threads" "img/s" "in MPI" "grad sum" "agreement"
for name in 1x1 1x2 1x2-yield 2x1 2x1-sync 2x1-yield 2x1-sync-yield; do
    rate=$(awk -v n="$name" '$1 == n { print $2 }' "$results" | median)
    share=$(awk -v n="$name" '$1 == n { print $3 }' "$results" | median)
    grads=$(awk -v n="$name" '$1 == n { print $4 }' "$results" | median)
    step=$(awk -v n="$name" '$1 == n { print $5 }' "$results" | median)
    case $name in
        1x1) label="1 process x 1 thread" ;;
        1x2) label="1 process x 2 threads" ;;
        1x2-yield) label="1 process x 2 threads, yield" ;;
        2x1) label="2 ranks x 1 thread" ;;
        2x1-sync) label="2 ranks x 1 thread, --sync-bn" ;;
        2x1-yield) label="2 ranks x 1 thread, yield" ;;
        2x1-sync-yield) label="2 ranks x 1 thread, --sync-bn, yield" ;;
    esac
    printf '%-40s %10.1f %8.1f%% %8.1f%% %10.3f%%\n' "$label" "$rate" \
        "$(awk -v s="$share" 'BEGIN { print 100 * s }')" "$(awk -v s="$grads" 'BEGIN { print 100 * s }')" \
        "$(awk -v s="$step" 'BEGIN { print 100 * s }')"
done
# The collectives by themselves, the ranks in step (bench_dist_sum): the
# most that overlapping the gradient sum with the backward pass could hide.
params=$("$ut" plan --img-size 64 --depth 3 --base 16 --in-ch 1 --batch 8 |
         awk '/parameters$/ { print $(NF - 1) }')
sum="$build/bench/bench_dist_sum"
if [ -x "$sum" ]; then
    "${mpi[@]}" --mca mpi_yield_when_idle 1 -np 2 "$sum" "$params" 200
else
    echo "($sum not built: no MPI in this build?)"
fi
