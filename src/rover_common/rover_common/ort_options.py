"""ONNX Runtime session options as the policy node runs its models; the benchmarks time the
models with the same options, so what they measure is what the node gets."""


def node_session_options(threads: int):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Idle ORT workers sleep instead of spinning: spinning threads take the cores the 30 Hz
    # control thread and the camera need (measured: worse tick timing and even slower inference
    # when the cores are shared). In a benchmark a spinning pool also slows whatever is timed
    # next: interleaved with two spinning sessions, a 512x1024x1024 FP32 MatMul took 22.6 ms
    # (median, 2 threads) against 8.7 ms with none spinning.
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    return options
