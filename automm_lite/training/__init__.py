"""Training stage (the only package that imports Lightning): the fit, the Lightning system, the weight soup, the
task objective and the device strategy."""
