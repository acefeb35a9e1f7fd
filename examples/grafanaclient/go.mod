module stackyard/examples/grafanaclient

go 1.19
