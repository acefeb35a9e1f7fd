module stackyard/examples/demo

go 1.19
