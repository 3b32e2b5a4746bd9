"""2D-CNN-LSTM (§3.3.1): Keras-style dropout against an independent step loop, init, feature path."""
import pytest
import torch
from torch import nn

from emorec.models import CNNLSTM, LSTMRegressor


def reference_lstm(x, w_ih, w_hh, b_ih, b_hh, input_mask, recurrent_mask):
    """Keras-semantics LSTM written out step by step: x_t ⊙ m_in; gate g sees h_{t−1} ⊙ m_g."""
    n, t, _ = x.shape
    hidden = w_hh.shape[1]
    h = torch.zeros(n, hidden, dtype=x.dtype)
    c = torch.zeros(n, hidden, dtype=x.dtype)
    w_gates = w_hh.view(4, hidden, hidden)  # PyTorch order: input, forget, cell, output
    for step in range(t):
        xt = x[:, step] * input_mask
        pre = [xt @ w_ih.view(4, hidden, -1)[g].T + b_ih.view(4, hidden)[g] + b_hh.view(4, hidden)[g]
               + (h * recurrent_mask[g]) @ w_gates[g].T for g in range(4)]
        i, f, gg, o = torch.sigmoid(pre[0]), torch.sigmoid(pre[1]), torch.tanh(pre[2]), torch.sigmoid(pre[3])
        c = f * c + i * gg
        h = o * torch.tanh(c)
    return h


def test_train_mode_matches_step_loop_with_the_same_masks():
    torch.manual_seed(0)
    model = LSTMRegressor(input_size=6, hidden_size=5, dropout=0.2, recurrent_dropout=0.2,
                          head_units=(4, 3)).double().train()
    with torch.no_grad():  # non-trivial biases and weights
        for p in model.lstm.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    x = torch.randn(3, 7, 6, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    in_mask, rec_mask = model.sample_masks(3, generator=g)
    assert in_mask.shape == (3, 6) and rec_mask.shape == (4, 5)
    assert set(rec_mask.unique().tolist()) <= {0.0, 1.25}
    assert not torch.equal(rec_mask[0], rec_mask[1])  # one mask per gate
    out = model(x, input_mask=in_mask.double(), recurrent_mask=rec_mask.double())
    lstm = model.lstm
    h = reference_lstm(x, lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0,
                       in_mask.double(), rec_mask.double())
    assert torch.allclose(out, model.head(h), atol=1e-12, rtol=0)
    # and the masks matter: without them the result differs
    ones = torch.ones_like(rec_mask).double()
    assert not torch.allclose(out, model(x, input_mask=torch.ones_like(in_mask).double(), recurrent_mask=ones))


def test_gradient_reaches_only_unmasked_recurrent_columns():
    model = LSTMRegressor(input_size=4, hidden_size=3, head_units=(2,)).train()
    rec = torch.ones(4, 3)
    rec[1, 2] = 0.0  # forget gate never sees h_{t−1}[2]
    model(torch.randn(2, 5, 4), input_mask=torch.ones(2, 4), recurrent_mask=rec).sum().backward()
    grad = model.lstm.weight_hh_l0.grad
    assert torch.equal(grad[3:6, 2], torch.zeros(3))
    assert grad[0:3, 2].abs().sum() > 0


def test_eval_mode_has_no_dropout_and_drawn_masks_are_seeded():
    model = LSTMRegressor(input_size=4, hidden_size=3, head_units=(2,))
    x = torch.randn(2, 5, 4)
    model.eval()
    lstm = model.lstm
    h = reference_lstm(x, lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0,
                       torch.ones(4), torch.ones(4, 3))
    assert torch.allclose(model(x, input_mask=torch.zeros(2, 4)), model.head(h), atol=1e-6)
    model.train()
    a = model(x, generator=torch.Generator().manual_seed(7))
    b = model(x, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_uniform_initialisation_and_forget_bias():
    model = LSTMRegressor(input_size=20, hidden_size=16, init_bound=0.05)
    for w in (model.lstm.weight_ih_l0, model.lstm.weight_hh_l0):
        assert w.abs().max() <= 0.05 and w.abs().max() > 0.045 and w.std() > 0.025
    assert torch.equal(model.lstm.bias_ih_l0[16:32], torch.ones(16))
    assert model.lstm.bias_ih_l0[:16].abs().sum() == 0 and model.lstm.bias_hh_l0.abs().sum() == 0
    with pytest.raises(ValueError, match="recurrent_dropout"):
        LSTMRegressor(4, 3, recurrent_dropout=1.0)


def test_cnn_lstm_layout_and_feature_cache_path():
    model = CNNLSTM("vgg16", width=0.125, hidden_size=8, head_units=(6, 4), finetune_from="Frozen").eval()
    assert model.feature_size == 64
    assert [m.out_features for m in model.temporal.head if isinstance(m, nn.Linear)] == [6, 4, 2]
    clips = torch.rand(2, 3, 4, 40, 32)
    with torch.no_grad():
        feats = model.encode_frames(clips)
        assert feats.shape == (2, 4, 64)
        frame2 = torch.flatten(model.pool(model.features(model.normalize(clips[:, :, 2]))), 1)
        assert torch.allclose(feats[:, 2], frame2, atol=1e-6)
        assert torch.equal(model(clips), model.forward_features(feats))
        encoder = model.feature_extractor()
        assert torch.equal(encoder(clips), feats)
        assert {id(p) for p in encoder.parameters()} == {id(p) for p in model.features.parameters()}
    model.train()
    masks = dict(input_mask=torch.ones(2, 64), recurrent_mask=torch.ones(4, 8))
    model(clips, **masks).sum().backward()
    assert all(p.grad is None for p in model.features.parameters())
    assert model.temporal.lstm.weight_ih_l0.grad is not None


@pytest.mark.parametrize("n_frozen", [0, 3, 4, 5])
def test_cascade_split_prefix_then_suffix_is_the_whole_cascade(n_frozen):
    model = CNNLSTM("vgg16_bn", width=0.125, hidden_size=8, head_units=(6, 4), finetune_from="Conv_5_1").eval()
    clips = torch.rand(2, 3, 4, 48, 40)
    prefix, suffix = model.split(n_frozen)
    with torch.no_grad():
        maps = prefix(clips)
        assert maps.shape[:3] == (2, maps.shape[1], 4)  # clip layout [N, C, T, h, w] kept
        torch.testing.assert_close(suffix(maps), model(clips))
        torch.testing.assert_close(model.encode_frames(clips)[:, 1],
                                   torch.flatten(model.pool(model.features(model.normalize(clips[:, :, 1]))), 1))
    assert {id(p) for p in suffix.parameters()} <= {id(p) for p in model.parameters()}
    trainable = {n.split(".")[1] for n, p in suffix.named_parameters() if p.requires_grad and n.startswith("stages")}
    assert trainable == ({"conv5"} if n_frozen < 5 else set())
