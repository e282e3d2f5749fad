"""The normxlogit command line and pipeline composition."""
