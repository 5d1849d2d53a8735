"""The stock pipeline the benchmark times: stock library calls only, as a first version would write it.

transformers ``generate`` (guidance 3, top-k 250), demucs ``apply_model``, ``noisereduce``,
librosa metrics and three pyplot Mel figures, in one process. It imports nothing from this
package: ``restoration.bench`` runs this file as a script,
``python bench_stock.py '{"musicgen": …, "demucs": …, "demucs_repo": …, "tokens": …, "prompt": …, "out": …}'``,
and reads the stage times from the ``STOCK-STAGES {json}`` line it prints.
"""

import json
import sys
import time


def main(argv: list[str]) -> None:
    """Run the stock pipeline with the JSON arguments in ``argv[0]``; print the stage times."""
    start = time.perf_counter()
    stages = {}
    args = json.loads(argv[0])

    import numpy as np
    import torch
    from transformers import AutoProcessor, MusicgenForConditionalGeneration
    from demucs.apply import apply_model
    from demucs.audio import convert_audio
    from demucs.pretrained import get_model
    import noisereduce
    import librosa
    import librosa.display
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    stages["imports"] = time.perf_counter() - start

    t = time.perf_counter()
    model = MusicgenForConditionalGeneration.from_pretrained(args["musicgen"])
    processor = AutoProcessor.from_pretrained(args["musicgen"])
    separator = get_model(args["demucs"], repo=None if args["demucs_repo"] is None else __import__("pathlib").Path(args["demucs_repo"]))
    separator.eval()
    stages["model loading"] = time.perf_counter() - t

    t = time.perf_counter()
    inputs = processor(text=[args["prompt"]], padding=True, return_tensors="pt")
    torch.manual_seed(0)
    audio_values = model.generate(**inputs, do_sample=True, guidance_scale=3, top_k=250, max_new_tokens=args["tokens"])
    sr = model.config.audio_encoder.sampling_rate
    wav = audio_values[0].float()
    stages["generate"] = time.perf_counter() - t

    t = time.perf_counter()
    mix = convert_audio(wav, sr, separator.samplerate, separator.audio_channels)
    with torch.no_grad():
        stems = apply_model(separator, mix[None], device="cpu")[0]
    restored = convert_audio(stems.sum(0), separator.samplerate, sr, 1)[..., : wav.shape[-1]]
    stages["demucs apply_model"] = time.perf_counter() - t

    t = time.perf_counter()
    gated = noisereduce.reduce_noise(y=wav.numpy(), sr=sr)
    stages["noisereduce"] = time.perf_counter() - t

    t = time.perf_counter()
    versions = {"input": wav.numpy()[0], "demucs": restored.numpy()[0], "spectral gating": np.asarray(gated)[0]}
    table = {}
    for name, y in versions.items():
        table[name] = {
            "flatness": float(librosa.feature.spectral_flatness(y=y).mean()),
            "rolloff_hz": float(np.median(librosa.feature.spectral_rolloff(y=y, sr=sr, roll_percent=0.99))),
            "rms": float(librosa.feature.rms(y=y).mean()),
        }
        mel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr), ref=np.max)
        plt.figure(figsize=(5, 3.2))
        librosa.display.specshow(mel, sr=sr, x_axis="time", y_axis="mel")
        plt.colorbar(format="%+2.0f dB")
        plt.title(name)
        plt.savefig(f"{args['out']}/mel_{name.replace(' ', '_')}.png")
        plt.close()
    stages["librosa metrics + 3 Mel plots"] = time.perf_counter() - t
    stages["total in script"] = time.perf_counter() - start
    print("STOCK-STAGES " + json.dumps(stages))


if __name__ == "__main__":
    main(sys.argv[1:])
