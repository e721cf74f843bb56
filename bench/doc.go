// Package bench holds Switchyard's benchmarks against the raw libraries and peers it
// builds on, so every figure in RESULTS.md comes with the baseline it is compared
// to, measured in the same run. Run them with bench/run.sh; CI does not (benchmarks
// are benchmarks, not tests).
package bench
