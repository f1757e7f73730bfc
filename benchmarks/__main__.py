from benchmarks import run

run.main()
