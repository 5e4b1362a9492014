"""The training loop, its state, callbacks, losses and optimisers."""
