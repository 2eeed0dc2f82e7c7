"""slak_mm.utils.dist: the one place the rank is read (the ops' tuning
cache and the work_dir lock ask it)."""
import pytest

from slak_mm.utils.dist import LAUNCHER_ENV, rank_and_world

_ALL = {
    name
    for names in LAUNCHER_ENV.values()
    for pair in [names]
    for group in pair
    for name in group
}


@pytest.fixture
def clean_env(monkeypatch):
    for name in _ALL:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_single_process_without_variables(clean_env):
    for launcher in ('pytorch', 'slurm', 'mpi', 'none'):
        assert rank_and_world(launcher) == (0, 1)


def test_each_launcher_reads_its_variables(clean_env):
    clean_env.setenv('RANK', '3')
    clean_env.setenv('WORLD_SIZE', '4')
    clean_env.setenv('SLURM_PROCID', '1')
    clean_env.setenv('SLURM_NTASKS', '2')
    clean_env.setenv('PMI_RANK', '5')  # mpi: after OMPI_COMM_WORLD_RANK
    clean_env.setenv('PMI_SIZE', '6')
    assert rank_and_world() == (3, 4)  # the default: torchrun's names
    assert rank_and_world('pytorch') == (3, 4)
    assert rank_and_world('slurm') == (1, 2)
    assert rank_and_world('mpi') == (5, 6)
    clean_env.setenv('OMPI_COMM_WORLD_RANK', '7')
    assert rank_and_world('mpi') == (7, 6)
    assert rank_and_world('none') == (0, 1)  # one process, whatever is set


def test_a_variable_that_is_no_integer_counts_as_unset(clean_env):
    clean_env.setenv('RANK', 'garbage')
    clean_env.setenv('WORLD_SIZE', '2')
    assert rank_and_world() == (0, 2)
