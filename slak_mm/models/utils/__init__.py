from .official_checkpoint import (convert_official_checkpoint,
                                  extract_state_dict, load_backbone_weights,
                                  load_checkpoint_file,
                                  load_pretrained_backbone,
                                  to_backbone_state_dict)

__all__ = [
    'convert_official_checkpoint', 'extract_state_dict',
    'load_backbone_weights', 'load_checkpoint_file',
    'load_pretrained_backbone', 'to_backbone_state_dict'
]
