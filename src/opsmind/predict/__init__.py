"""Performance prediction: load and utilisation forecasts, capacity models, SLO burn rates and
bottleneck warnings ahead of time. Reads stored metrics; never acts."""
