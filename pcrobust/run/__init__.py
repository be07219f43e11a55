"""Running a plan: its context, the stored units of an output folder, execution, merging, assembly."""
