"""slak_mm.config.loading: top-level variables given in --cfg-options are
re-bound where the config used them."""
from slak_mm.config import load_config

CONFIG = '''
num_classes = 3
data_root = 'data/x'
model = dict(
    head=dict(num_classes=num_classes, channels=3),
    heads=[dict(num_classes=num_classes), dict(num_classes=4)])
dataset = dict(ann_file=data_root + '/ann.json', seg=data_root)
'''


def test_a_number_variable_rebinds_the_keys_of_its_name(tmp_path):
    path = tmp_path / 'cfg.py'
    path.write_text(CONFIG)
    cfg = load_config(str(path), {'num_classes': 7})
    assert cfg.num_classes == 7
    assert cfg.model.head == dict(num_classes=7, channels=3)  # 3 elsewhere
    # a key of its name holding another value was set on purpose: kept
    assert [h['num_classes'] for h in cfg.model.heads] == [7, 4]


def test_a_string_variable_rebinds_its_value_and_paths_under_it(tmp_path):
    path = tmp_path / 'cfg.py'
    path.write_text(CONFIG)
    cfg = load_config(str(path), {'data_root': 'elsewhere'})
    assert cfg.dataset == dict(ann_file='elsewhere/ann.json', seg='elsewhere')
    assert cfg.num_classes == 3
