from .checkpoint_fit import (PARTIAL_LOAD_OPTION, CheckpointMismatchError,
                             fit_checkpoint, state_dict_of)
from .official_checkpoint import (convert_official_checkpoint,
                                  extract_state_dict, load_backbone_weights,
                                  load_checkpoint_file,
                                  load_pretrained_backbone,
                                  to_backbone_state_dict)

__all__ = [
    'PARTIAL_LOAD_OPTION', 'CheckpointMismatchError', 'fit_checkpoint',
    'state_dict_of', 'convert_official_checkpoint', 'extract_state_dict',
    'load_backbone_weights', 'load_checkpoint_file',
    'load_pretrained_backbone', 'to_backbone_state_dict'
]
