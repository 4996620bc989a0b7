"""ACT policy inference for the rover: model directory, backends, chunk scheduling, the policy node."""
