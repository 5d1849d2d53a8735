"""Random-weight MusicGen stand-ins, saved exactly as a Hub checkpoint is.

No machine of this project can download model weights, so the real loading path
(``MusicgenForConditionalGeneration.from_pretrained`` + ``AutoProcessor.from_pretrained``)
is exercised on models built here and written with ``save_pretrained``. The folder a
builder returns can be put in ``MUSICGEN_MODEL`` and loads as a Hub id does.

- :func:`build_tiny_musicgen`: a tiny architecture (well under 1 MB) for tests; it
  generates 2 s of 32 kHz audio in well under a second on a 2-core CPU.
- :func:`build_musicgen_small_random`: the full musicgen-small architecture
  (≈ 587 M parameters, ≈ 2.4 GB on disk) with random weights, for timing: it costs the
  same compute as the trained model.

Both fill EnCodec's codebooks with random vectors: transformers initialises them to
zeros, and then every token decodes to the same audio whatever the seed or prompt.
"""

from __future__ import annotations

from pathlib import Path

SAMPLE_RATE = 32000
TINY_TEXT_VOCAB = 120  # upper bound handed to the tokenizer trainer; the real size comes out smaller

# Sentences the stand-in tokenizer is trained on (any text tokenizes: unknown pieces map to <unk>).
_TOKENIZER_SENTENCES = (
    "lofi hip hop with mellow piano and vinyl crackle",
    "upbeat electronic dance music with heavy bass and claps",
    "calm acoustic guitar ballad with soft vocals",
    "orchestral film score with strings, brass and timpani",
    "jazz trio with upright bass, brushed drums and piano",
    "80s synth pop with a drum machine and bright synthesizers",
    "ambient drone with slow pads and field recordings",
    "rock song with distorted electric guitar and loud drums",
)


def build_tiny_musicgen(folder, *, seed: int = 0, text_width: int = 24) -> Path:
    """Build a tiny random MusicGen (model + processor) and save it into ``folder``.

    Architecture: 2-layer T5 text encoder (d_model ``text_width``, 24 by default), EnCodec at
    32 kHz mono with the musicgen-small hop (upsampling 8·5·4·4 = 640 samples, so 50 frames per
    second) and 4 codebooks of 64 entries (1.2 kbps), a 2-layer decoder (hidden 32). As in
    musicgen-small (text 768, decoder 1024), the text width differs from the decoder's, so the
    model has the ``enc_to_dec_proj`` projection between them; ``text_width=32`` builds one
    without it. Weights are random but
    scaled so that the token distribution is peaked and depends on the prompt; the
    codebooks are random so different tokens decode to different audio.

    Parameters
    ----------
    folder : str or Path
        Output folder (created if needed). Afterwards it holds ``config.json``,
        ``generation_config.json``, ``model.safetensors``, the tokenizer and
        ``preprocessor_config.json``.
    seed : int
        Seed of the random weights; the same seed writes the same weights.
    text_width : int
        The text encoder's ``d_model``; the decoder's hidden size is 32.

    Returns
    -------
    Path
        ``folder``, for ``MusicgenForConditionalGeneration.from_pretrained(folder)``.
    """
    from transformers import EncodecConfig, MusicgenDecoderConfig, T5Config

    tokenizer = _train_tiny_tokenizer()
    text = T5Config(
        vocab_size=len(tokenizer),
        d_model=int(text_width),
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        dropout_rate=0.0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    audio = EncodecConfig(
        sampling_rate=SAMPLE_RATE,
        audio_channels=1,
        codebook_size=64,
        codebook_dim=16,
        hidden_size=16,
        num_filters=2,
        num_residual_layers=1,
        upsampling_ratios=[8, 5, 4, 4],
        # EnCodec keeps bandwidth / (frame_rate × log2(codebook_size)) codebooks: 1.2 kbps at
        # 50 Hz with 6-bit codebooks gives 4, as musicgen-small's 2.2 kbps with 11-bit ones.
        target_bandwidths=[1.2],
        num_lstm_layers=1,
        use_causal_conv=False,
        normalize=False,
    )
    decoder = MusicgenDecoderConfig(
        vocab_size=audio.codebook_size,
        max_position_embeddings=2048,
        num_hidden_layers=2,
        ffn_dim=64,
        num_attention_heads=4,
        hidden_size=32,
        num_codebooks=4,
        dropout=0.0,
        pad_token_id=audio.codebook_size,
        bos_token_id=audio.codebook_size,
    )
    return _build_and_save(folder, text, audio, decoder, tokenizer, seed=seed, sharpen=True)


def build_musicgen_small_random(folder, *, seed: int = 0) -> Path:
    """Build the full musicgen-small architecture with random weights and save it into ``folder``.

    Same shapes as ``facebook/musicgen-small``: T5-base text encoder (d_model 768,
    12 layers, 12 heads, d_ff 3072, vocab 32128), EnCodec 32 kHz mono (codebook 2048,
    64 filters, upsampling 8·5·4·4, hidden 128, codebook_dim 128, 2.2 kbps → 4 codebooks,
    2 LSTM layers, non-causal, not normalized) and a 24-layer decoder (hidden 1024,
    16 heads, ffn 4096, 4 codebooks, vocab 2048): about 587 M parameters, a 2.4 GB
    ``model.safetensors``. The tokenizer is the tiny trained one; its ids stay below the
    32128-entry embedding. Use it for timing only: the audio is noise-like.

    Parameters
    ----------
    folder : str or Path
        Output folder (created if needed); needs about 2.4 GB of free disk.
    seed : int
        Seed of the random weights.

    Returns
    -------
    Path
        ``folder``.
    """
    from transformers import EncodecConfig, MusicgenDecoderConfig, T5Config

    tokenizer = _train_tiny_tokenizer()
    text = T5Config(
        vocab_size=32128,
        d_model=768,
        d_kv=64,
        d_ff=3072,
        num_layers=12,
        num_decoder_layers=12,
        num_heads=12,
        relative_attention_num_buckets=32,
        dropout_rate=0.1,
        feed_forward_proj="relu",
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    if len(tokenizer) > text.vocab_size:  # pragma: no cover - the tiny tokenizer has ~60 pieces
        raise ValueError(f"tokenizer has {len(tokenizer)} pieces, more than the text vocab {text.vocab_size}")
    audio = EncodecConfig(
        sampling_rate=SAMPLE_RATE,
        audio_channels=1,
        codebook_size=2048,
        codebook_dim=128,
        hidden_size=128,
        num_filters=64,
        num_residual_layers=1,
        upsampling_ratios=[8, 5, 4, 4],
        target_bandwidths=[2.2],
        num_lstm_layers=2,
        use_causal_conv=False,
        normalize=False,
        compress=2,
        kernel_size=7,
        last_kernel_size=7,
        residual_kernel_size=3,
        dilation_growth_rate=2,
        trim_right_ratio=1.0,
        pad_mode="reflect",
    )
    decoder = MusicgenDecoderConfig(
        vocab_size=2048,
        max_position_embeddings=2048,
        num_hidden_layers=24,
        ffn_dim=4096,
        num_attention_heads=16,
        hidden_size=1024,
        num_codebooks=4,
        dropout=0.1,
        activation_function="gelu",
        pad_token_id=2048,
        bos_token_id=2048,
    )
    return _build_and_save(folder, text, audio, decoder, tokenizer, seed=seed, sharpen=False)


def _train_tiny_tokenizer():
    """A Unigram tokenizer trained on a few sentences, wrapped as a T5 tokenizer (pad 0, eos 1, unk 2)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import T5TokenizerFast

    backend = Tokenizer(models.Unigram())
    backend.normalizer = normalizers.NFKC()
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=TINY_TEXT_VOCAB,
        special_tokens=["<pad>", "</s>", "<unk>"],
        unk_token="<unk>",
        show_progress=False,
    )
    backend.train_from_iterator(list(_TOKENIZER_SENTENCES), trainer)
    backend.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    return T5TokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        extra_ids=0,
        model_max_length=512,
    )


def _build_and_save(folder, text_config, audio_config, decoder_config, tokenizer, *, seed: int, sharpen: bool) -> Path:
    import torch
    from transformers import (
        EncodecFeatureExtractor,
        MusicgenConfig,
        MusicgenForConditionalGeneration,
        MusicgenProcessor,
    )

    if audio_config.num_quantizers != decoder_config.num_codebooks:
        raise ValueError(
            f"EnCodec has {audio_config.num_quantizers} codebooks but the decoder {decoder_config.num_codebooks}"
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = MusicgenConfig(text_encoder=text_config, audio_encoder=audio_config, decoder=decoder_config)

    cpu_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(int(seed))
        model = MusicgenForConditionalGeneration(config)
        generator = torch.Generator().manual_seed(int(seed) + 1)
        with torch.no_grad():
            _fill_codebooks(model, generator)
            if sharpen:
                _sharpen_tiny_weights(model, generator)
                _calibrate_tiny_codec(model, generator)
    finally:
        torch.random.set_rng_state(cpu_state)
    model.eval()

    vocab = decoder_config.vocab_size
    gen = model.generation_config
    gen.pad_token_id = vocab
    gen.decoder_start_token_id = vocab
    gen.bos_token_id = vocab
    gen.eos_token_id = None
    gen.do_sample = True
    gen.guidance_scale = 3.0
    gen.top_k = 250
    gen.temperature = 1.0
    gen.max_length = 1500  # as facebook/musicgen-small: 30 s at 50 Hz

    model.save_pretrained(folder)
    feature_extractor = EncodecFeatureExtractor(
        feature_size=1, sampling_rate=audio_config.sampling_rate, padding_value=0.0
    )
    MusicgenProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def _fill_codebooks(model, generator) -> None:
    """Replace EnCodec's all-zero codebook buffers with unit-variance random vectors."""
    import torch

    filled = 0
    for name, buffer in model.audio_encoder.named_buffers():
        if name.endswith("codebook.embed"):
            buffer.copy_(torch.randn(buffer.shape, generator=generator, dtype=buffer.dtype))
            filled += 1
        elif name.endswith("codebook.embed_avg"):
            buffer.copy_(model.audio_encoder.get_buffer(name[: -len("embed_avg")] + "embed"))
        elif name.endswith("codebook.inited"):
            buffer.fill_(1.0)
    if filled != model.config.audio_encoder.num_quantizers:
        raise RuntimeError(f"filled {filled} codebooks, expected {model.config.audio_encoder.num_quantizers}")


def _sharpen_tiny_weights(model, generator) -> None:
    """Re-draw the tiny model's matrices with a larger spread.

    transformers initialises with std 0.02, which in a 32-wide model gives near-uniform
    next-token distributions that barely depend on the prompt; a test of "another prompt
    gives other audio" would then rest on luck. A spread of about 1/sqrt(fan_in) for the
    encoder, projections and attention, and a larger one for the LM heads, makes the
    distribution peaked and prompt-dependent while staying finite.
    """
    import torch

    for module_name, module in [("text_encoder", model.text_encoder), ("decoder", model.decoder)]:
        for name, param in module.named_parameters():
            if param.ndim < 2:
                continue  # norms and biases keep their initialisation
            fan_in = param.shape[-1]
            std = 1.0 / fan_in**0.5
            if "lm_heads" in name:
                std *= 4.0
            if name.endswith("embed_tokens.weight") or "embed_tokens" in name or name.endswith("shared.weight"):
                std = 1.0
            param.copy_(torch.randn(param.shape, generator=generator, dtype=param.dtype) * std)
    proj = getattr(model, "enc_to_dec_proj", None)
    if proj is not None:
        proj.weight.copy_(torch.randn(proj.weight.shape, generator=generator) / proj.weight.shape[-1] ** 0.5)


def _calibrate_tiny_codec(model, generator, *, rms: float = 0.1) -> None:
    """Make the tiny EnCodec decoder's output zero-mean, token-dependent and about ``rms`` in level.

    With transformers' initialisation the output of a tiny decoder is dominated by its
    biases (a fixed pattern with a 0.2 DC offset) and barely depends on the tokens. With the
    biases zeroed, the audio is noise-like and is set by the tokens; the last convolution's
    weight-norm gain is then scaled so that random tokens decode to ``rms`` RMS.
    """
    import torch

    codec = model.audio_encoder
    for name, param in codec.decoder.named_parameters():
        if name.endswith("bias"):
            param.zero_()
    config = model.config.audio_encoder
    codes = torch.randint(0, config.codebook_size, (1, 1, config.num_quantizers, 100), generator=generator)
    level = float(codec.decode(codes, [None]).audio_values.std())
    last = codec.decoder.layers[-1].conv
    gain = last.parametrizations.weight.original0 if hasattr(last, "parametrizations") else last.weight
    gain.mul_(rms / max(level, 1e-12))
