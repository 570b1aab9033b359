"""Stage-2 settings: amortized encoders, generator fine-tuning and the adversarial term."""

from __future__ import annotations

from dataclasses import dataclass

from musiclord.errors import ConfigError


@dataclass(frozen=True)
class AmortizedConfig:
    """Stage 2 (paper Fig. 2, right): encoders learn to predict the stage-1 codes while the
    generator is fine-tuned, with a WGAN-GP critic sharpening the spectrograms.

    Attributes:
        steps: optimisation steps of the encoders and generator; 0 derives them from `epochs`.
        epochs: passes over the training clips (used when steps == 0).
        batch_size: clips per step (global; split across torchrun processes).
        lr_encoders: Adam learning rate of the content and class encoders.
        lr_generator: Adam learning rate of the generator (fine-tuning: lower than stage 1).
        lr_discriminator: Adam learning rate of the critic.
        w_content: weight of the regression ||E_c(x) - c_i||² to the stage-1 content code.
        w_class: weight of the regression ||E_y(x) - e_y||² to the stage-1 class embedding.
        w_rec: weight of the reconstruction loss of G(E_c(x), E_y(x)) (stage-1 loss terms).
        w_adv: weight of the generator's Wasserstein loss; 0 disables the critic entirely.
        w_adv_translation: weight of the generator's Wasserstein loss on *translations*
            G(E_c(x), e_t) into another class t, which the class-conditional critic then also
            learns to reject (`amortized_losses`); needs w_adv > 0; 0: off.
        translation_to: target classes of the translations above (names of the dataset's
            classes; empty: every class). ("piano",) judges only translations into piano, the
            one target whose envelope the source's code does not give (docs/results.md).
        w_cycle: weight of ||E_c(G(E_c(x), e_t)) - c_i||², the stage-1 content code read back
            from the translation; 0: off.
        gp_weight: gradient-penalty weight (10 as in Gulrajani et al. 2017).
        gp_every: compute the penalty every this many critic steps, weighted by it (lazy
            regularisation as in StyleGAN2; the penalty's double backward dominates a CPU step).
        drift: ProGAN's drift penalty on real scores (keeps the critic's scale anchored).
        n_critic: critic updates per generator step.
        adv_warmup_steps: steps before the adversarial term is switched on (the critic still
            trains), so the encoders first reach the stage-1 codes.
        disc_channels: width of the critic's first layer.
        disc_conditional: class-conditional critic (projection on the instrument label).
        grad_clip: clip the global gradient norm of encoders+generator (0: off).
        max_nonfinite: stop after this many non-finite losses in a row (each is skipped).
        rerender_prob: probability that the encoders see a clip's rerender (its notes played by
            another sample bank, `prepare synth`'s "rerender" split) instead of the clip, while the
            generator still reconstructs the clip: encoders that read the notes, not the bank
            (0: off; datasets without rerenders are unaffected).
        rerender_target_prob: probability, drawn independently, that the generator's target (and
            the critic's real sample) is the clip's rerender instead of the clip, as stage 1's
            `latent.rerender_prob` (the encoders then see the rerender too).
        rerender_target_independent: the encoders' input is drawn from the clip and its rerender
            (`rerender_prob`) whatever the target is, so that no code can tell the generator which
            bank to play: it learns the banks' mean (False: as above, ablation 43 of docs/results.md).
        rerender_target_detach: with `rerender_target_prob`, the clips whose target is the rerender
            reach the generator with the encoders' codes detached, so that only the generator
            learns the second bank (the encoders still regress the stage-1 codes on them) and no
            code is pushed to carry which bank to play (False: off; ablation 44 of docs/results.md:
            the unseen-bank probe rose, so no preset uses it).
        cross_prob: probability, drawn after the rerender swap, that the *content* encoder sees
            the clip's notes on another instrument (`prepare synth --cross-fraction`'s "cross"
            split) while the class encoder does not, and the generator still reconstructs the
            clip: the code must come from the notes, whatever plays them (0: off).
        timbre_eq_db: colour the encoders' input with a random smooth gain curve over the mel
            bands of up to this many dB (`augment.random_eq`; 0: off), so that they read notes
            rather than one bank's colour.
        ema_decay: validate and export an exponential moving average of the encoders' and
            generator's weights with this decay per step (`ema.WeightEMA`, bias-corrected: a window
            of about 1 / (1 - decay) steps; 0: the weights as trained), so that the exported model
            is not one noisy iterate of the adversarial run. `quality` uses 0.998: on two training
            trajectories whose raw weights it leaves bitwise unchanged it lowered the Merlin dev ratio
            by 0.0053 each (ablations 54-55 of docs/results.md); ablations 51-53 measured an earlier
            average whose warm-up capped the decay at (1 + n) / (10 + n), not this one.
        content_erasure: after training, fit a linear erasure of the instrument on the exported
            model's content codes of the training clips and their rerenders and install it in the
            model (`train.erasure`, the same fit as `musiclord erase`; needs at least twice
            content_dim * content_frames such clips). `quality` uses it: on the shipped model it
            lowered the five-set dev probe from 0.307 to 0.233 (by clip; 0.503 to 0.437 by passage)
            for +0.002 of Merlin dev ratio (ablation 58).
        erasure_adapt_steps: then fine-tune the generator alone to the erased codes for this many
            steps (`train.erasure_adapt`, lr 1e-5, best on val; 0: off), holding the translations
            into the classes the critic judged (`translation_to`, when w_adv_translation > 0) to
            what stage 2 made of them. 1000 (about a minute) gave Merlin dev ratio -0.003, pitch
            +0.003 to +0.014 (ablation 59); the held piano translations -0.003 more (ablation 61).
            `quality` uses 8000 (about 10 min), which centred codes need (ablation 76).
        erasure_centre: before the erasure's fit, replace each content channel's time mean by the
            fitting codes' global mean (`musiclord erase --centre`). `quality` uses it: five-set
            dev probe 0.352 -> 0.309 for +0.003 of Merlin dev ratio (ablation 76).
        erasure_banks: more training sample banks for the erasure's fit: datasets prepared with the
            same options as the training data and another `--rerender-soundfont`, whose rerenders
            (the same training clips in that bank) join the fit as one more bank each (`musiclord
            erase --bank-data`). The shipped model's fit had two, Debian's OPL3 bank (ablation 60) and
            freepats played by TiMidity++ (ablation 66): `amortized.erasure_banks=[DATA_OPL3,DATA_FREEPATS]`
            (`make quality`).
        erase_targets: the content encoder regresses the stage-1 codes with the instrument erased
            (a linear erasure fitted on them, class as the concept, before stage 2 starts), so that
            the generator is fine-tuned, critic included, on codes that carry no linear trace of
            the instrument (False: the stage-1 codes as they are). Off in every preset: on the
            quality recipe it raised the five-set dev probe by 0.010 and the Merlin dev ratio by
            0.001 against the same stage 1 without it (ablation 65).
        val_every: steps between validation passes (reconstruction loss on the val split; the
            best one is exported); 0: only at the end.
        val_clips: validation clips per pass (0: all).
        log_every: steps between scalar logs.
        image_every: steps between spectrogram images (0: only at the end).
        checkpoint_every: steps between RUN_DIR/amortized.pt checkpoints (0: only at the end).
    """

    steps: int = 0
    epochs: int = 10
    batch_size: int = 32
    lr_encoders: float = 1e-3
    lr_generator: float = 1e-4
    lr_discriminator: float = 1e-4
    w_content: float = 10.0
    w_class: float = 10.0
    w_rec: float = 1.0
    w_adv: float = 0.01
    w_adv_translation: float = 0.0
    w_cycle: float = 0.0
    translation_to: tuple[str, ...] = ()
    gp_weight: float = 10.0
    gp_every: int = 1
    drift: float = 1e-3
    n_critic: int = 1
    adv_warmup_steps: int = 0
    rerender_prob: float = 0.5
    rerender_target_prob: float = 0.0
    rerender_target_independent: bool = False
    rerender_target_detach: bool = False
    cross_prob: float = 0.0
    timbre_eq_db: float = 0.0
    ema_decay: float = 0.0
    content_erasure: bool = False
    erasure_adapt_steps: int = 0
    erasure_centre: bool = False
    erasure_banks: tuple[str, ...] = ()
    erase_targets: bool = False
    disc_channels: int = 16
    disc_conditional: bool = True
    grad_clip: float = 0.0
    max_nonfinite: int = 20
    val_every: int = 200
    val_clips: int = 256
    log_every: int = 20
    image_every: int = 0
    checkpoint_every: int = 200

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.n_critic < 1 or self.gp_every < 1:
            raise ConfigError("amortized.batch_size, n_critic and gp_every must be >= 1")
        if self.steps < 0 or self.epochs < 0:
            raise ConfigError("amortized.steps and amortized.epochs must be >= 0")
        if not 0 <= self.rerender_prob <= 1:
            raise ConfigError("amortized.rerender_prob must be in [0, 1]")
        if not 0 <= self.rerender_target_prob <= 1:
            raise ConfigError("amortized.rerender_target_prob must be in [0, 1]")
        if (self.rerender_target_independent or self.rerender_target_detach) and self.rerender_target_prob == 0:
            raise ConfigError("amortized.rerender_target_independent and rerender_target_detach act only on rerender "
                              "targets: set amortized.rerender_target_prob > 0")
        if not 0 <= self.cross_prob <= 1:
            raise ConfigError("amortized.cross_prob must be in [0, 1]")
        if self.erasure_adapt_steps < 0 or (self.erasure_adapt_steps and not self.content_erasure):
            raise ConfigError("amortized.erasure_adapt_steps must be >= 0 and needs amortized.content_erasure")
        if (self.erasure_banks or self.erasure_centre) and not self.content_erasure:
            raise ConfigError("amortized.erasure_banks and erasure_centre need amortized.content_erasure")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError("amortized.ema_decay must be in [0, 1) (0: off)")
        if not 0 <= self.timbre_eq_db <= 24:
            raise ConfigError("amortized.timbre_eq_db must be in [0, 24] dB")
        if min(self.w_content, self.w_class, self.w_rec, self.w_adv, self.w_adv_translation, self.w_cycle,
               self.gp_weight) < 0:
            raise ConfigError("amortized loss weights must be >= 0")
        if self.w_adv_translation > 0 and self.w_adv == 0:
            raise ConfigError("amortized.w_adv_translation needs the critic: set amortized.w_adv > 0")


AMORTIZED_PRESETS: dict[str, AmortizedConfig] = {
    "tiny": AmortizedConfig(steps=12, batch_size=8, w_adv=0.01, disc_channels=4, gp_every=4, val_every=6,
                            val_clips=16, log_every=2, checkpoint_every=6),
    # demo: a few minutes on 2 CPU cores after stage 1 (both stages within 15 minutes)
    # (~1-3.7 s/step at batch 16 with model.enc_channels=96 on a loaded 2-core machine). w_adv: at
    # 0.01 the generator term (|D| ~ 35) outweighed the reconstruction (~1.0) and val got worse
    # after the term came on at step 50, so the demo uses a fifth of it.
    "demo": AmortizedConfig(steps=600, batch_size=16, lr_encoders=1e-3, lr_generator=1e-4, w_adv=0.002,
                            adv_warmup_steps=50, disc_channels=8, gp_every=4, val_every=100, val_clips=128,
                            log_every=20, image_every=300, checkpoint_every=100),
    # quality: the critic also judges translations into piano, the one target whose envelope
    # (strikes, decay) the source's code does not carry (ablation 29); 3000 steps rather than 2000
    # and a random EQ of up to 12 dB on the encoders' input, so that less of an unseen bank's
    # colour reaches the content codes (ablations 31-37 in docs/results.md); half of the time the
    # content encoder hears the clip's notes on another instrument (needs `prepare synth
    # --cross-fraction 1`; ablation 39: unseen-bank probe 0.456 -> 0.297, Merlin dev 0.746 -> 0.734);
    # the validated and exported weights are a moving average over ~500 steps (ablations 54-55);
    # the exported content codes pass through a linear erasure of the instrument, to which the
    # generator is then adapted (ablations 58-59), the codes centred first and the adaptation 8000
    # steps long (ablation 76)
    "quality": AmortizedConfig(steps=3000, batch_size=16, w_adv=0.002, w_adv_translation=0.001,
                               translation_to=("piano",), timbre_eq_db=12.0, cross_prob=0.5, ema_decay=0.998,
                               content_erasure=True, erasure_centre=True, erasure_adapt_steps=8000,
                               adv_warmup_steps=150, disc_channels=16, val_every=100, checkpoint_every=100,
                               image_every=2000),
    "paper": AmortizedConfig(epochs=100, batch_size=64, lr_encoders=3e-4, lr_generator=1e-4, w_adv=0.01,
                             n_critic=2, adv_warmup_steps=2000, disc_channels=64, val_every=1000,
                             val_clips=0, checkpoint_every=2000, image_every=2000, log_every=50),
}
