"""pcrobust's first-party datasets: real labelled images that ship inside installed packages."""
