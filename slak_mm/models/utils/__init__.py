from .official_checkpoint import (extract_state_dict, load_checkpoint_file,
                                  load_pretrained_backbone,
                                  to_backbone_state_dict, weight_density)

__all__ = [
    'extract_state_dict', 'load_checkpoint_file', 'load_pretrained_backbone',
    'to_backbone_state_dict', 'weight_density'
]
