"""A worked pcrobust plugin: the ``lateral`` digit-net family and an FGSM attack."""
