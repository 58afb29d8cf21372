/* Headers that slurm-headers generates Rust bindings for. */
#include <slurm/spank.h>
#include <slurm/slurm_version.h>
