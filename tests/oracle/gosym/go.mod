module gomaptrace/oracle/gosym

go 1.19
