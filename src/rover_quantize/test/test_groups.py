"""The search's module groups, from the exporter's node names."""
import pytest

from rover_quantize.groups import is_backbone, node_group


@pytest.mark.parametrize('name, group', [
    ('/backbone/conv1/Conv', 'backbone.stem'),
    ('/backbone/Relu', 'backbone.stem'),
    ('/backbone/MaxPool', 'backbone.layer1.0'),   # INT8 with layer1 even when the stem is FP32
    ('/backbone/layer1/layer1.0/conv1/Conv', 'backbone.layer1.0'),
    ('/backbone/layer2/layer2.0/conv2/Conv', 'backbone.layer2.0'),
    ('/backbone/layer2/layer2.0/Relu_1', 'backbone.layer2.0'),
    # the 1x1 downsample conv: a group of its own, so the search can keep it FP32 alone
    ('/backbone/layer2/layer2.0/downsample/downsample.0/Conv', 'backbone.layer2.0.downsample'),
    ('/encoder/layers.0/self_attn/q_proj/Gemm', 'encoder.layers.0.attn'),
    ('/encoder/layers.1/linear1/Gemm', 'encoder.layers.1.ffn'),
    ('/decoder/layers.0/multihead_attn/out_proj/Gemm', 'decoder.layers.0.attn'),
    ('/action_head/Gemm', 'action_head'),
    ('/encoder_img_feat_input_proj/Conv', 'encoder_img_feat_input_proj'),
])
def test_node_group(name, group):
    assert node_group(name) == group


def test_downsample_group_is_backbone():
    # mode mixed-backbone quantizes (and mode mixed keeps FP32) every backbone group, downsample included
    assert is_backbone(node_group('/backbone/layer3/layer3.0/downsample/downsample.0/Conv'))
    assert not is_backbone(node_group('/encoder/layers.0/self_attn/q_proj/Gemm'))
