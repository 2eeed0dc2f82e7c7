"""``mmengine.load`` after ``import slak_mm``: YAML is read as plain data
(a tag that would build a Python object is refused, naming the file) and
pickles are not unpickled without the opt-in; what mm reads through it (a
YAML config, a dataset's ``ann_file``) is covered with it."""
import os.path as osp

import mmengine
import pytest
from mmengine.config import Config
from mmengine.dataset import BaseDataset

import slak_mm  # noqa: F401  (registers the handlers)
from slak_mm.checkpoint import UnsafeFileError
from tests.tool_runner import refusal


def _tagged_yaml(tmp_path):
    marker = tmp_path / 'YAML_RAN'
    path = tmp_path / 'config.yaml'
    path.write_text(f'model:\n  type: X\nx: !!python/object/apply:os.system '
                    f'["touch {marker}"]\n')
    return str(path), marker


def test_yaml_is_read_as_plain_data(tmp_path):
    plain = tmp_path / 'plain.yaml'
    plain.write_text('model:\n  type: X\n  depths: [3, 3, 9, 3]\n')
    assert Config.fromfile(str(plain)).model.depths == [3, 3, 9, 3]
    path, marker = _tagged_yaml(tmp_path)
    for read in (mmengine.load, Config.fromfile):
        with pytest.raises(UnsafeFileError) as err:
            read(path)
        assert 'python/object/apply:os.system' in str(err.value)
        assert repr(path) in str(err.value)  # the user's file, not a copy
    assert not marker.exists()


def test_a_yaml_config_with_code_stops_a_tool_in_one_line(tmp_path):
    path, marker = _tagged_yaml(tmp_path)
    error = refusal('tools/train.py', path, '--work-dir', str(tmp_path))
    assert 'Refused to read' in error and 'os.system' in error
    assert not marker.exists()


def test_pickles_are_not_unpickled_without_the_opt_in(tmp_path, monkeypatch,
                                                      mm_log):
    path = str(tmp_path / 'annotations.pkl')
    mmengine.dump(dict(metainfo={}, data_list=[dict(img_path='a.jpg')]), path)
    with pytest.raises(UnsafeFileError) as err:
        mmengine.load(path)
    assert repr(path) in str(err.value) and '--unsafe-load' in str(err.value)
    with pytest.raises(UnsafeFileError, match='annotations.pkl'):
        BaseDataset(ann_file=path, lazy_init=False)  # ann_file by extension
    monkeypatch.setenv('SLAK_MM_UNSAFE_LOAD', '1')
    assert BaseDataset(ann_file=path)[0]['img_path'] == osp.join('a.jpg')
    assert any('unpickling' in r.getMessage() for r in mm_log)
