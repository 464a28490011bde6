"""A sibling module the package's module class imports."""

GREETING = "hello"
