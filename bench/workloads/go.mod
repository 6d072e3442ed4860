module gomaptrace/bench/workloads

go 1.23
