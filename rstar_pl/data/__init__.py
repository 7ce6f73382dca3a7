"""Problem sets: the built-in scripted examples (`scripted_problems.json`) and the
synthetic word-problem domain of the CPU demo (`wordproblems`)."""
