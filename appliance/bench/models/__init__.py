"""Production-size model architectures with random weights, for benchmarks and tests."""
