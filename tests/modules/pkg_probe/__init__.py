"""Test package: loaded as `"pkg_probe.mod:PkgModule"` and through an entry point."""
