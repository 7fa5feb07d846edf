"""The service's endpoints, one router per concern: predict.py (/predict), health.py (/, /info)."""
