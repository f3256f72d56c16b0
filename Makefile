# Thin wrappers. Every target that needs tools runs `setup` first, which installs only
# what is missing (QEMU, OVMF, musl-gcc; rust-src and llvm-tools for the nightly).
.PHONY: setup build user user-host-test run run-uefi test bench fmt fmt-check lint clean

# The user programs and the default initramfs that `make user` builds (scripts/build-user.sh).
USER_BIN := target/user/bin
INITRAMFS := target/initramfs.cpio

setup:
	@bash scripts/setup.sh

build: setup
	cargo build

## make user: build the user programs (user/ in Rust, user/c/*.c with musl-gcc) into
## $(USER_BIN) and pack $(INITRAMFS) (/init = the shell, /bin/NAME = each program)
user: setup
	bash scripts/build-user.sh

## make user-host-test: the user programs are plain static Linux executables: run them here
user-host-test: user
	bash user/host-test.sh

## make run: boot the kernel in QEMU into the shell, serial console on this terminal (quit: Ctrl-A X)
run: setup user
	cargo run

run-uefi: setup user
	cargo build
	./run-qemu.sh target/x86_64-target/debug/kernel --uefi

## make test: every suite (host tests + QEMU test kernels); non-zero exit on any failure
test: setup
	bash scripts/test.sh

fmt:
	cargo fmt --all
	cd boot && cargo fmt
	cd user && cargo fmt --all

## make fmt-check: formatting as `make fmt` would leave it (make test runs this)
fmt-check:
	cargo fmt --all -- --check
	cd boot && cargo fmt -- --check
	cd user && cargo fmt --all -- --check

## make lint: clippy on every crate, warnings are errors (make test runs this)
lint: setup
	cargo clippy --lib --bins --tests -- -D warnings
	cd / && cargo +nightly clippy --manifest-path $(CURDIR)/devices/Cargo.toml --target-dir $(CURDIR)/target/host --all-targets -- -D warnings
	cd / && cargo +nightly clippy --release --manifest-path $(CURDIR)/boot/Cargo.toml --target-dir $(CURDIR)/target/boot --all-targets -- -D warnings
	cd user && cargo clippy --release -- -D warnings

## make bench: memory-management micro-benchmarks (release build, in QEMU, key=value lines)
bench: setup user
	cargo build --release --bin bench --bin kernel
	./run-qemu.sh target/x86_64-target/release/bench
	KRUN_TIMEOUT=600 ./run-qemu.sh target/x86_64-target/release/kernel --init $(USER_BIN)/bench
	KRUN_TIMEOUT=600 ./run-qemu.sh target/x86_64-target/release/kernel --init $(USER_BIN)/bench_hmm

clean:
	cargo clean

## make fuzz: the system-call and device fuzzers (user/c/fuzz_*.c), a million calls each, on
## the release kernel (scripts/fuzz.sh; FUZZ_SEED=N for another seed; make test runs fewer),
## then every test program that needs no test hook with 1%, 5% and 20% of the kernel's
## allocations failing (scripts/failslab.sh)
.PHONY: fuzz
fuzz: setup user
	cargo build --release --bin kernel
	FUZZ_CALLS=$${FUZZ_CALLS:-1000000} bash scripts/fuzz.sh target/x86_64-target/release/kernel
	for p in 1 5 20; do FAILSLAB_PROBABILITY=$$p FAILSLAB_PROGRAMS=all \
	    bash scripts/failslab.sh target/x86_64-target/release/kernel || exit 1; done
