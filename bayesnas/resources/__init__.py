"""Resource models of architectures (nes2019 §4.2): what an architecture costs to run,
computed from its hyper-parameters without building it."""
