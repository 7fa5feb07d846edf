"""The one shared layer under the tools (judge, bench, quantize, tune): launching a service,
a typed /predict and /info client, run records and resume, statistics, run metadata, charts
and signal handling. Each module does one of these jobs; the tools keep only their own logic."""
