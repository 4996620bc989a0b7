"""A directory rover-quantize builds meets the model-directory contract (rover_common.model_contract)."""
from rover_common import model_contract as mc


def test_a_built_directory_meets_the_contract(built):
    manifest = mc.read_manifest(built.model_dir)
    assert mc.verify_files(built.model_dir, manifest) == []
    for key in (mc.CPU_FP32, mc.CPU_INT8, mc.BACKBONE, mc.HEAD):
        assert (built.model_dir / manifest['models'][key]).is_file()
    required = mc.new_manifest(inputs=[], outputs=[], features=None, chunk_size=1, n_action_steps=1,
                               temporal_ensemble_coeff=None, action_names=[], state_names=[], models={},
                               files={}, created_by='x')
    assert set(required) <= set(manifest)
    assert [i['name'] for i in manifest['inputs']] == [mc.IMAGE_INPUT, mc.STATE_INPUT]
    assert manifest['outputs'][0]['name'] == mc.ACTIONS_OUTPUT and manifest['features']['name'] == mc.FEATURES
