from mlperf_train.cli import main

raise SystemExit(main())
