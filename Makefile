# Thin wrappers. Every target that needs tools runs `setup` first, which installs only
# what is missing (QEMU, OVMF, musl-gcc; rust-src and llvm-tools for the nightly).
.PHONY: setup build run run-uefi test bench fmt lint clean

setup:
	@bash scripts/setup.sh

build: setup
	cargo build

## make run: boot the kernel in QEMU, serial console on this terminal (quit: Ctrl-A X)
run: setup
	cargo run

run-uefi: setup
	cargo build
	./run-qemu.sh target/x86_64-target/debug/kernel --uefi

## make test: every suite (host tests + QEMU test kernels); non-zero exit on any failure
test: setup
	bash scripts/test.sh

fmt:
	cargo fmt --all
	cd boot && cargo fmt

lint: setup
	cargo clippy --lib --bins --tests
	cd / && cargo +nightly clippy --manifest-path $(CURDIR)/devices/Cargo.toml --target-dir $(CURDIR)/target/host --all-targets
	cd / && cargo +nightly clippy --release --manifest-path $(CURDIR)/boot/Cargo.toml --target-dir $(CURDIR)/target/boot --all-targets

## make bench: memory-management micro-benchmarks (release build, in QEMU, key=value lines)
bench: setup
	cargo build --release --bin bench
	./run-qemu.sh target/x86_64-target/release/bench

clean:
	cargo clean
