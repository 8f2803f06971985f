"""ControlNets: which layout a file has, loading it into diffusers, and the control maps it reads."""
