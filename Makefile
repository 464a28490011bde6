# Thin aliases for ./dev, which sets everything up from a fresh clone.
.PHONY: install test lint typecheck check bench demo clean

install:
	./dev setup

test:
	./dev test

lint:
	./dev lint

typecheck:
	./dev typecheck

check:
	./dev check

bench:
	./dev bench

demo:
	./dev demo

clean:
	./dev clean
