"""First-party attacks for pcrobust, registered through the ``pcrobust`` entry-point group."""
