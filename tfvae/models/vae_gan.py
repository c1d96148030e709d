"""VAE-GAN (Larsen et al. 2016): a VAE whose reconstruction is judged in a discriminator's
feature space, trained together with that discriminator.

```none
L_prior = KL(q(z|x) || p(z))
L_llike = -E_q log N(Dis_l(x) | Dis_l(Dec(z)), diag(s^2))               z ~ q(z|x)
L_GAN   = log Dis(x) + 1/2 [log(1 - Dis(Dec(z))) + log(1 - Dis(Dec(z_p)))]   z_p ~ p(z)

encoder        descends  beta L_prior + L_llike       (beta = prior_weight, 1 in the paper)
decoder        descends  gamma * L_llike + L_GAN      (L_GAN's fake half: fool Dis)
discriminator  ascends   L_GAN                        (= descends its logistic loss -L_GAN)
```
Signs. L_GAN above is the *value* (the log-probability Dis gives the right answers): the
discriminator ascends it and the decoder descends it. The paper's algorithm box writes the
decoder's gradient as grad(gamma L_llike - L_GAN) and the discriminator's as grad(L_GAN),
both descended; that is right only if L_GAN there denotes the discriminator's *loss*
(-L_GAN here). Taken literally with the paper's Eq. 7 it would let Dis descend its own
objective. The reference implementation (andersbll/autoencoding_beyond_pixels) descends
the discriminator's logistic loss and gives the decoder its negative, as here. The two fake
terms are averaged so real and generated images weigh equally (its real_vs_gen_weight 0.5).
With `discriminate_reconstructions=False` (the reference model's discriminate_ae_recon
switch; its CelebA script turns it off in the latest revision, 24aa0f2, and left it on in the
paper's, 1906387) the fake half is log(1 - Dis(Dec(z_p))) alone: prior samples are the
only generated images the GAN judges, and the decoder learns reconstructions from
gamma * L_llike only.

`generator="minimax"` (the reference's) has the decoder descend log(1 - Dis(x~));
"non_saturating" descends -log Dis(x~) instead (same fixed point, stronger gradient when Dis
rejects the fakes confidently).

L_GAN never reaches the encoder: the images the GAN loss sees are decoded from
stop_gradient(z), and the encoder's update is the gradient of L_prior + L_llike only.
L_llike does not move the discriminator either; each network has its own optimizer:
`model.optimizer` (from `compile`) the encoder (and the posterior head and prior),
`decoder_optimizer` the decoder and its likelihood head, `discriminator_optimizer` the
discriminator. All three are attributes of the model, so a checkpoint of the model
holds their state and a resumed run continues exactly.

Equilibrium gating (the reference's `GradientDescent.train_epoch`, on by default, `gating`
turns it off): with the batch's costs  real = mean -log Dis(x)  and
fake = mean -log(1 - Dis(x~)) over reconstructed and prior images (both ln 2 ~ 0.69 at
chance), the discriminator skips its update when either cost is below
`equilibrium - margin` (it is winning), the decoder skips its update when either is above
`equilibrium + margin` (it is losing badly); if both would skip, both update. A skipped
update is no optimizer step at all (Adam's moments and step count stay).

The decoder keeps the likelihood head of a VAE (default "bernoulli": its mean, the sigmoid of
the logits, is the image), so `decode`, `sample` and `reconstruct` work as for any model. The
feature likelihood is not a density on pixels, so the export has no `log_likelihood` and
`evaluate` estimates no NLL (`log_likelihood_unavailable` says why).

#### References
[1] Larsen, Sønderby, Larochelle & Winther (2016), Autoencoding beyond pixels using a
    learned similarity metric, arXiv:1512.09300, Eqs. 7-10 and Alg. 1.
"""

from tfvae import validation
from tfvae._tf import tf, tfk, tfp
from tfvae.models import _inputs
from tfvae.models._discriminator import Discriminator, feature_loss
from tfvae.models.vae import VAE
from tfvae.registry import MODELS
from tfvae.seeds import stateless_seed

GENERATORS = ("minimax", "non_saturating")
METRICS = ("loss", "kl", "feature_loss", "discriminator_loss", "generator_loss",
           "accuracy_real", "accuracy_reconstructed", "accuracy_prior", "decoder_updated",
           "discriminator_updated", "pixel_mse")


@MODELS.register("vae_gan")
class VAEGAN(VAE):
    """A VAE with a learned feature-space similarity and a GAN loss on its decoder.

    Args:
        gamma: weight of L_llike against the GAN loss in the decoder's update.
            Default value: 1e-2 (the reference's recon_vs_gan_weight, 1e-2 : 0.99).
        feature_layer: l, the discriminator's hidden layer (1-based) of L_llike.
            Default value: 3.
        discriminator_units: the discriminator's conv channels, then its dense width.
            Default value: (32, 64, 128, 256).
        decoder_lr, discriminator_lr: Adam learning rates (beta_1 = 0.5) of the decoder's
            and the discriminator's optimizers; the encoder's is the one given to
            `compile`. Default value: 3e-4 each.
        generator: "minimax" or "non_saturating" (see the module docstring).
            Default value: "minimax".
        gating: skip the discriminator's or the decoder's update when the other side is
            too far ahead (the reference's equilibrium/margin rule). Default value: True.
        equilibrium, margin: the gate's centre (nats) and half-width. Default value: 0.68
            and 0.4.
        normalize_features: scale each feature of Dis_l by its spread over the real batch
            in L_llike (the reference batch-normalizes that layer); False: the paper's
            N(Dis_l(x) | Dis_l(x~), I). Default value: True.
        prior_weight: beta, the weight of L_prior in the encoder's update (beta * L_prior +
            L_llike). L_llike sums over every feature of Dis_l at unit scale, so its size, and
            with it the KL's relative weight, follows the layer's width (the preset's layer
            gives L_llike ~600 per image against a pixel VAE's ~250 reconstruction nats).
            Default value: 1.0 (the paper's encoder loss).
        discriminate_reconstructions: whether L_GAN's fake half includes Dec(z ~ q(z|x))
            beside the prior samples Dec(z_p) (see the module docstring). Default value:
            True (the paper's Eq. 10).
        **kwargs: the other `VAE` arguments (latent_dim, posterior, likelihood, prior,
            architecture: the preset apps/vae_gan.toml uses "conv", ...).
    """

    derived = ("terms", "objective", "num_samples")
    guards_steps = False  # its three updates apply whatever their gradients hold
    #: why `log_likelihood` is not exported and evaluate estimates no NLL
    log_likelihood_unavailable = (
        "VAE-GAN trains its decoder on a Gaussian likelihood of discriminator features "
        "(Dis_l(x)), not a density on pixels, and with a GAN loss; the pixel head's "
        "importance-sampled log p(x) would describe a model that was never fitted.")

    def __init__(self, gamma=1e-2, feature_layer=3, discriminator_units=(32, 64, 128, 256),
                 decoder_lr=3e-4, discriminator_lr=3e-4, generator="minimax", gating=True,
                 equilibrium=0.68, margin=0.4, normalize_features=True, prior_weight=1.0,
                 discriminate_reconstructions=True, **kwargs):
        if kwargs.get("terms") is not None:
            raise ValueError("VAE-GAN builds its objective itself (L_prior, L_llike, L_GAN); "
                             f"`terms` cannot be set; got {kwargs['terms']!r}.")
        super().__init__(**kwargs)
        self.gamma = validation.non_negative(gamma, "gamma")
        self.generator = validation.choice(generator, "generator", GENERATORS)
        self.gating = validation.boolean(gating, "gating")
        self.equilibrium = validation.positive(equilibrium, "equilibrium")
        self.margin = validation.positive(margin, "margin")
        self.normalize_features = validation.boolean(normalize_features, "normalize_features")
        self.prior_weight = validation.positive(prior_weight, "prior_weight")
        self.discriminate_reconstructions = validation.boolean(
            discriminate_reconstructions, "discriminate_reconstructions")
        self.decoder_lr = validation.positive(decoder_lr, "decoder_lr")
        self.discriminator_lr = validation.positive(discriminator_lr, "discriminator_lr")
        self.discriminator = Discriminator(self.image_shape, discriminator_units, feature_layer)
        self.discriminator_units = self.discriminator.hidden_units
        self.feature_layer = self.discriminator.feature_layer
        self.decoder_optimizer = tfk.optimizers.Adam(self.decoder_lr, beta_1=0.5)
        self.discriminator_optimizer = tfk.optimizers.Adam(self.discriminator_lr, beta_1=0.5)
        # Slots now, so a checkpoint restores into them before the first step.
        self.decoder_optimizer.build(self.decoder_variables())
        self.discriminator_optimizer.build(self.discriminator_variables())

    # ------------------------------------------------------------------ ownership

    def decoder_variables(self):
        """The decoder torso and the likelihood head: moved by `decoder_optimizer` only."""
        return self.decoder.trainable_variables + self.likelihood.trainable_variables

    def discriminator_variables(self):
        """Dis: moved by `discriminator_optimizer` only."""
        return self.discriminator.trainable_variables

    def encoder_variables(self):
        """Encoder torso, posterior head and prior: moved by `model.optimizer` only."""
        owned = {v.ref() for v in self.decoder_variables() + self.discriminator_variables()}
        return [v for v in self.trainable_variables if v.ref() not in owned]

    def model_variables(self):
        return self.encoder_variables()

    def critic_variables(self):
        return self.discriminator_variables()

    def metric_names(self):
        return list(METRICS)

    # ------------------------------------------------------------------ losses

    def vae_gan_losses(self, x, training=False, seed=None):
        """Every quantity of one step, batch means (scalars):

        kl (L_prior), feature_loss (L_llike), gan_value (L_GAN), discriminator_loss
        (-L_GAN), generator_loss (what the decoder descends besides gamma * L_llike),
        real_cost and fake_cost (the gate's inputs), accuracy_real /
        accuracy_reconstructed / accuracy_prior (shares Dis classifies right), pixel_mse
        (mean squared pixel error of the reconstructions), loss (the encoder's objective).
        """
        seed = self.next_seed() if seed is None else stateless_seed(seed)
        encode_seed, prior_seed = tfp.random.split_seed(seed, 2)
        fwd = self.forward(x, num_samples=1, training=training, seed=encode_seed, decode=False)
        x = fwd.x
        z = fwd.z[0]                                                           # [B, D]
        batch = tf.shape(z)[0]
        x_rec = self.decode(z, training=training).mean()
        z_p = self.prior.sample(batch, seed=prior_seed)
        if self.discriminate_reconstructions:
            # The GAN's images: reconstructions from a z the GAN loss cannot differentiate
            # through, and prior samples, in one decoder pass.
            fakes = self.decode(tf.concat([tf.stop_gradient(z), z_p], 0),
                                training=training).mean()
            logits, feats = self.discriminator(tf.concat([x, fakes], 0), training=training)
            t_real, t_rec, t_prior = tf.split(logits, 3)
            rec_feats = self.discriminator.features(x_rec, training=training)
            judged = (t_rec, t_prior)
        else:
            # The GAN sees prior samples only; Dis on the reconstructions gives their
            # features and the accuracy metric, and no loss reads its logit.
            fakes = self.decode(z_p, training=training).mean()
            logits, feats = self.discriminator(tf.concat([x, fakes, x_rec], 0),
                                               training=training)
            t_real, t_prior, t_rec = tf.split(logits, 3)
            rec_feats = feats[2 * batch:]
            judged = (t_prior,)
        real_feats = feats[:batch]
        llike = tf.reduce_mean(feature_loss(real_feats, rec_feats, self.normalize_features))
        kl = tf.reduce_mean(fwd.rate)

        # log Dis = -softplus(-t), log(1 - Dis) = -softplus(t); the judged fakes weigh equally
        def fake_mean(f):
            return tf.add_n([tf.reduce_mean(f(t)) for t in judged]) / len(judged)

        real_cost = tf.reduce_mean(tf.nn.softplus(-t_real))
        fake_cost = fake_mean(tf.nn.softplus)
        gan_value = -(real_cost + fake_cost)
        if self.generator == "minimax":
            generator_loss = -fake_cost
        else:
            generator_loss = fake_mean(lambda t: tf.nn.softplus(-t))

        def share(condition):
            return tf.reduce_mean(tf.cast(condition, tf.float32))
        return {"loss": kl + llike, "kl": kl, "feature_loss": llike, "gan_value": gan_value,
                "discriminator_loss": -gan_value, "generator_loss": generator_loss,
                "real_cost": real_cost, "fake_cost": fake_cost,
                "accuracy_real": share(t_real > 0), "accuracy_reconstructed": share(t_rec < 0),
                "accuracy_prior": share(t_prior < 0),
                "pixel_mse": tf.reduce_mean(tf.square(x_rec - x))}

    def gates(self, real_cost, fake_cost):
        """(update the decoder, update the discriminator), bool scalars: the reference's
        equilibrium/margin rule, or both True when `gating` is off."""
        if not self.gating:
            return tf.constant(True), tf.constant(True)
        low, high = self.equilibrium - self.margin, self.equilibrium + self.margin
        dis = tf.logical_not(tf.logical_or(real_cost < low, fake_cost < low))
        dec = tf.logical_not(tf.logical_or(real_cost > high, fake_cost > high))
        neither = tf.logical_not(tf.logical_or(dis, dec))
        return tf.logical_or(dec, neither), tf.logical_or(dis, neither)

    def compile(self, optimizer="rmsprop", *args, jit_compile="auto", **kwargs):
        """Keras' `compile`, without XLA unless asked for: XLA took over 8 minutes to compile
        this three-gradient step on the 2-core CPU (the graph step starts in seconds)."""
        return super().compile(optimizer, *args, jit_compile=False if jit_compile == "auto"
                               else jit_compile, **kwargs)

    def compute_losses(self, x, training=False, seed=None):
        return self.vae_gan_losses(x, training=training, seed=seed)

    def train_step(self, data):
        x = _inputs.unpack(data)
        with tf.GradientTape(persistent=True) as tape:
            out = self.vae_gan_losses(x, training=True, seed=self.next_seed())
            encoder_loss = self.prior_weight * out["kl"] + out["feature_loss"]
            decoder_loss = self.gamma * out["feature_loss"] + out["generator_loss"]
            discriminator_loss = out["discriminator_loss"]
        enc, dec, dis = (self.encoder_variables(), self.decoder_variables(),
                         self.discriminator_variables())
        enc_grads = tape.gradient(encoder_loss, enc)
        dec_grads = tape.gradient(decoder_loss, dec)
        dis_grads = tape.gradient(discriminator_loss, dis)
        del tape
        update_dec, update_dis = self.gates(out["real_cost"], out["fake_cost"])
        self.optimizer.apply_gradients(zip(enc_grads, enc))

        def step(optimizer, grads, variables):
            def apply():
                optimizer.apply_gradients(zip(grads, variables))
                return tf.constant(True)
            return apply
        tf.cond(update_dec, step(self.decoder_optimizer, dec_grads, dec),
                lambda: tf.constant(False))
        tf.cond(update_dis, step(self.discriminator_optimizer, dis_grads, dis),
                lambda: tf.constant(False))
        out["decoder_updated"] = tf.cast(update_dec, tf.float32)
        out["discriminator_updated"] = tf.cast(update_dis, tf.float32)
        return self._update_trackers(out)

    def test_step(self, data):
        return self._update_trackers(self.vae_gan_losses(_inputs.unpack(data)))

    def proposal(self, x):
        raise ValueError(self.log_likelihood_unavailable)

    def export_signatures(self, module):
        """No `log_likelihood` (see `log_likelihood_unavailable`)."""
        del module
        return {"log_likelihood": None}
