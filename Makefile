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

# make bench ARGS='--quick --plot bench.png'
bench:
	./dev bench $(ARGS)

demo:
	./dev demo

clean:
	./dev clean
